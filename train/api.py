"""What vae_export may use of vae_train (an import-linter contract holds it to this module): a finished
run's directory, its data, the custom model classes, and the Keras -> ONNX conversion.

Importing this module registers the custom classes (Sampling, VAE, CVAE), so that
`keras.models.load_model` reads a run's .keras files.
"""

from vae_train.convert import to_onnx
from vae_train.data import NUM_CLASSES, load_mnist
from vae_train.models import CVAE, VAE, Sampling
from vae_train.run import read_run
from vae_train.rundir import MODEL_FILES, archive_damage

__all__ = [
    "CVAE",
    "MODEL_FILES",
    "NUM_CLASSES",
    "VAE",
    "Sampling",
    "archive_damage",
    "load_mnist",
    "read_run",
    "to_onnx",
]
