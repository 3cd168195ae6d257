"""A finished vae-train run, loaded for export: its models as graphs with named, deterministic outputs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from vae_runtime.errors import DataError, VaeDigitsError
from vae_runtime.mnist import KERAS_SOURCE, Mnist
from vae_train.api import (  # registers the models
    MODEL_FILES,
    NUM_CLASSES,
    archive_damage,
    load_mnist,
    read_run,
)


@dataclass
class TrainedRun:
    """The parts of a run an export needs."""

    path: Path
    record: dict
    encoder: keras.Model  # image (+ label) -> {"z_mean", "z_log_var"}
    decoder: keras.Model  # z (+ label) -> {"image"}
    run_id: str

    @property
    def kind(self) -> str:
        return self.record["config"]["model"]

    @property
    def conditional(self) -> bool:
        return self.kind == "cvae"

    @property
    def latent_dim(self) -> int:
        return self.record["architecture"]["latent_dim"]

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES if self.conditional else 0

    def load_data(self, path: str | None = None) -> Mnist:
        """MNIST for the checks (`path`, else the run's own when it can be found without a path):
        test digits for parity, train digits for calibration. Any MNIST file will do."""
        name = self.record.get("data", {}).get("name") or self.record["config"].get("data")
        if path is None and name not in (None, KERAS_SOURCE) and not Path(name).exists():
            raise DataError(
                f"run {self.path} was trained on {name}; pass --data PATH to a MNIST file for the checks"
            )
        return load_mnist(path or name)


def load_run(path: Path) -> TrainedRun:
    """Load a finished run directory; a VaeDigitsError says why when it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise VaeDigitsError(f"run directory {path} does not exist")
    record = read_run(path)
    if record.get("status") != "complete":
        raise VaeDigitsError(f"run {path} is not finished; resume it with vae-train --resume")
    files = {name: path / filename for name, filename in MODEL_FILES.items()}
    for role in ("encoder", "decoder"):
        _check_model_file(files[role])
    try:
        encoder = keras.models.load_model(files["encoder"])
        decoder = keras.models.load_model(files["decoder"])
    except Exception as error:  # a damaged .keras file can raise many types
        raise VaeDigitsError(f"cannot load the models of run {path} ({error})") from None
    digest = hashlib.sha256()
    for model in (encoder, decoder):
        for weight in model.get_weights():
            digest.update(np.ascontiguousarray(weight).tobytes())
    return TrainedRun(path, record, _deterministic(encoder), _named(decoder), digest.hexdigest()[:16])


def _check_model_file(path: Path) -> None:
    """A missing or damaged .keras file, said as such (Keras calls both "File not found")."""
    if not path.is_file():
        raise VaeDigitsError(f"run {path.parent} has no {path.name}; it was not written or was removed")
    damage = archive_damage(path)
    if damage is not None:
        raise VaeDigitsError(f"{path} is damaged or not a .keras file ({damage}); train the run again")


def _deterministic(encoder: keras.Model) -> keras.Model:
    """The encoder without its Sampling layer: the runtime samples with a seeded numpy RNG."""
    z_mean, z_log_var = encoder.outputs[:2]
    return keras.Model(encoder.inputs, {"z_mean": z_mean, "z_log_var": z_log_var})


def _named(decoder: keras.Model) -> keras.Model:
    return keras.Model(decoder.inputs, {"image": decoder.outputs[0]})
