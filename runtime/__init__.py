"""vae_runtime: generate, encode and decode digits from an exported bundle, without TensorFlow."""

from vae_runtime.errors import BundleError, DataError, VaeDigitsError

__all__ = ["BundleError", "DataError", "VaeDigitsError"]
