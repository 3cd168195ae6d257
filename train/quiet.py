"""TensorFlow without its start-up noise, for the training and export commands."""

import os

from vae_runtime.quiet import native_output_silenced


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up log (CUDA probes, absl warnings) silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_output_silenced():
        import tensorflow  # noqa: F401
