"""vae_train: the VAE and conditional VAE on MNIST, trained with Keras 3 on TensorFlow.

The names below load TensorFlow on first use, so `vae-train --help` stays fast.
"""

from importlib import import_module

__all__ = ["CVAE", "VAE", "Architecture", "Sampling", "build_decoder", "build_encoder", "build_model"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(import_module("vae_train.models"), name)
    raise AttributeError(f"module 'vae_train' has no attribute {name!r}")
