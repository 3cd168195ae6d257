"""vae_export: a trained vae-train run -> a validated, self-describing model bundle.

`export_onnx` and `export_tflite` load TensorFlow on first use, so `vae-export --help` stays fast.
"""

from importlib import import_module

__all__ = ["export_onnx", "export_tflite"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(import_module(f"vae_export.{name.removeprefix('export_')}"), name)
    raise AttributeError(f"module 'vae_export' has no attribute {name!r}")
