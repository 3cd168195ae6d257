"""vae_runtime: generate, encode and decode digits from an exported bundle, without TensorFlow.

Examples:
    Four sevens from the embedded default bundle:

    >>> from vae_runtime import Generator
    >>> Generator.load().generate(7, count=4, seed=0).shape
    (4, 28, 28)
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from vae_runtime.errors import BundleError, DataError, VaeDigitsError, WorkError

if TYPE_CHECKING:  # type checkers see the real classes; at run time they load on first use (numpy)
    from vae_runtime.bundle import embedded_bundle
    from vae_runtime.engine import Latents
    from vae_runtime.generator import Generator
    from vae_runtime.manifest import Manifest, ModelFile, TensorSpec

__all__ = [
    "BundleError",
    "DataError",
    "Generator",
    "Latents",
    "Manifest",
    "ModelFile",
    "TensorSpec",
    "VaeDigitsError",
    "WorkError",
    "embedded_bundle",
]
_LAZY = {
    "Generator": "generator",
    "Latents": "engine",
    "embedded_bundle": "bundle",
    "Manifest": "manifest",
    "ModelFile": "manifest",
    "TensorSpec": "manifest",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"vae_runtime.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vae_runtime' has no attribute {name!r}")
