"""vae_export: a trained vae-train run -> a validated, self-describing model bundle.

`export_bundle` does what `vae-export` does (formats, variants, prior, temperature, `only`), reporting
progress through a callback; `export_onnx` and `export_tflite` export one format; `export_c` writes the
C library for microcontrollers (`vae-export c`). They load TensorFlow on first use, so `vae-export
--help` stays fast.

Example:
    >>> from vae_export import export_bundle
    >>> export_bundle("runs/cvae", "bundles/cvae", formats=("onnx",), prior=10)
"""

from importlib import import_module

__all__ = ["ExportStep", "export_bundle", "export_c", "export_onnx", "export_tflite"]
_HOMES = {
    "ExportStep": "pipeline",
    "export_bundle": "api",
    "export_c": "micro",
    "export_onnx": "onnx",
    "export_tflite": "tflite",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"vae_export.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'vae_export' has no attribute {name!r}")
