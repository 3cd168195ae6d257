"""The files of a run directory: config.json (the run's record), history.csv, the loss curves, the models
and the checkpoints; each written to a temporary name and renamed into place."""

from __future__ import annotations

import csv
import json
import platform
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from vae_runtime.errors import VaeDigitsError
from vae_runtime.fileio import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from vae_train.config import TrainConfig

RUN_FORMAT = "vae-digits-run/1"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "loss_curves.png"
CHECKPOINTS = "checkpoints"
MODEL_FILES = {"model": "model.keras", "encoder": "encoder.keras", "decoder": "decoder.keras"}
LOSSES = ("total_loss", "reconstruction_loss", "kl_loss")
HISTORY_COLUMNS = ("epoch", *LOSSES, *(f"val_{loss}" for loss in LOSSES), "seconds")

EpochReport = Callable[[dict], None]
StepProgress = Callable[[int, int, int], None]  # (epoch, step, steps per epoch)


def holds_files(directory: Path) -> bool:
    return any(path.is_file() for path in directory.rglob("*"))


def claim(out: Path) -> None:
    try:
        (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VaeDigitsError(f"cannot create --out {out} ({error.strerror})") from None


def completed_epochs(out: Path) -> int:
    epochs = [int(p.stem.split("-")[1]) for p in (out / CHECKPOINTS).glob("epoch-*.keras")]
    return max(epochs, default=0)


def checkpoint_path(out: Path, epoch: int) -> Path:
    return out / CHECKPOINTS / f"epoch-{epoch:04d}.keras"


def check_checkpoint(path: Path) -> None:
    """Refuse a damaged checkpoint before training starts (and before other workers wait on this one)."""
    damage = archive_damage(path)
    if damage is not None:
        raise VaeDigitsError(f"cannot resume from {path} ({damage})")


def archive_damage(path: Path) -> str | None:
    """What is wrong with a saved .keras file (a zip archive), or None when every member reads back whole."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (OSError, zipfile.BadZipFile) as error:
        return str(error)
    return None if damaged is None else f"{damaged} is damaged"


def restore(model: keras.Model, path: Path) -> None:
    """The weights, optimizer state and noise state of a checkpoint, into a model of its architecture."""
    try:
        model.load_weights(path)
    except Exception as error:  # a damaged weights file can raise many types
        raise VaeDigitsError(f"cannot resume from {path} ({error})") from None


def write_record(out: Path, record: dict) -> None:
    atomic_write_text(out / CONFIG_FILE, json.dumps(record, indent=2) + "\n")


def save_model(model: keras.Model, path: Path) -> None:
    temporary = path.with_name(f".{path.stem}.partial.keras")
    model.save(temporary)
    temporary.replace(path)


def read_history(out: Path) -> list[dict]:
    path = Path(out) / HISTORY_FILE
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def write_history(out: Path, rows: list[dict]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [
        ",".join(f"{row[c]:.6g}" if c != "epoch" else str(row[c]) for c in HISTORY_COLUMNS) for row in rows
    ]
    atomic_write_text(out / HISTORY_FILE, "\n".join(lines) + "\n")


class RunKeeper(keras.callbacks.Callback):
    """Writes the history row, then the checkpoint, after every epoch (`writes`: the chief's job);
    reports progress and keeps the rows."""

    def __init__(
        self, out: Path, config: TrainConfig, report: EpochReport, writes: bool, history: list[dict]
    ):
        super().__init__()
        self.out, self.config, self.report, self.writes = out, config, report, writes
        self.rows = list(history)  # the rows this worker knows: the run's last before, then this session's

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        number = epoch + 1
        row = {
            "epoch": number,
            **{k: float(logs[k]) for k in HISTORY_COLUMNS[1:-1]},
            "seconds": time.perf_counter() - self.started,
        }
        self.rows.append(row)
        if self.writes:
            history = [r for r in read_history(self.out) if r["epoch"] < number]
            write_history(self.out, [*history, row])
            save_model(self.model, checkpoint_path(self.out, number))
            self._prune_checkpoints(number)
        self.report(row | {"epochs": self.config.epochs})

    def _prune_checkpoints(self, newest: int) -> None:
        keep = self.config.keep_checkpoints
        if keep > 0:
            for epoch in range(1, newest - keep + 1):
                checkpoint_path(self.out, epoch).unlink(missing_ok=True)


class StepCallback(keras.callbacks.Callback):
    """Reports each training step to a `StepProgress`."""

    def __init__(self, progress: StepProgress, steps: int):
        super().__init__()
        self.progress, self.steps, self.epoch = progress, steps, 0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.progress(self.epoch, batch + 1, self.steps)


def run_summary(history: list[dict], seconds: float) -> dict:
    last = history[-1]
    return {
        "epochs": last["epoch"],
        "train": {loss: last[loss] for loss in LOSSES},
        "validation": {loss: last[f"val_{loss}"] for loss in LOSSES},
        "validation_split": "test",
        "seconds": round(sum(row["seconds"] for row in history), 2),
        "seconds_this_session": round(seconds, 2),
    }


def plot_curves(history: list[dict], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
    for axis, loss in zip(axes, LOSSES, strict=True):
        axis.plot(epochs, [row[loss] for row in history], "o-", label="train")
        axis.plot(epochs, [row[f"val_{loss}"] for row in history], "s--", label="validation")
        axis.set(title=loss.replace("_", " ").replace("kl", "KL"), xlabel="epoch", ylabel="nats per digit")
        axis.grid(alpha=0.3)
        axis.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }
