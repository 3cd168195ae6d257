"""vae_runtime: generate, encode and decode digits from an exported bundle, without TensorFlow.

Example:
    >>> from vae_runtime import Generator
    >>> Generator.load().generate(7, count=4, seed=0).shape
    (4, 28, 28)
"""

from importlib import import_module

from vae_runtime.errors import BundleError, DataError, VaeDigitsError

__all__ = ["BundleError", "DataError", "Generator", "Manifest", "VaeDigitsError", "default_bundle"]
_LAZY = {"Generator": "generator", "default_bundle": "generator", "Manifest": "manifest"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"vae_runtime.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vae_runtime' has no attribute {name!r}")
