"""A training run: a directory that holds the models, config.json, history.csv, curves and checkpoints.

A run is finished only when config.json says `"status": "complete"`; every file is written to a
temporary name and renamed into place, so a killed run is resumable from its last checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vae_runtime.errors import VaeDigitsError
from vae_runtime.fileio import atomic_write_bytes, atomic_write_text
from vae_train.data import NUM_CLASSES, load_mnist, make_dataset
from vae_train.distribute import STRATEGIES, describe, is_chief, make_strategy
from vae_train.models import Architecture, build_model

RUN_FORMAT = "vae-digits-run/1"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "loss_curves.png"
CHECKPOINTS = "checkpoints"
MODEL_FILES = {"model": "model.keras", "encoder": "encoder.keras", "decoder": "decoder.keras"}
LOSSES = ("total_loss", "reconstruction_loss", "kl_loss")
RESUMABLE_CHANGES = ("epochs", "data", "keep_checkpoints", "tensorboard", "strategy")
HISTORY_COLUMNS = ("epoch", *LOSSES, *(f"val_{loss}" for loss in LOSSES), "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a run; the defaults are the seed design's."""

    model: str = "cvae"
    epochs: int = 30
    batch_size: int = 128
    latent_dim: int = 2
    learning_rate: float = 1e-3
    beta: float = 1.0
    final_kernel: int = 3
    filters: tuple[int, int] = (32, 64)
    dense_units: int = 16
    seed: int = 0
    data: str | None = None
    keep_checkpoints: int = 3
    tensorboard: bool = False
    strategy: str = "auto"

    def __post_init__(self) -> None:
        if self.model not in ("vae", "cvae"):
            raise VaeDigitsError(f"--model must be vae or cvae, not {self.model!r}")
        object.__setattr__(self, "filters", tuple(self.filters))  # JSON gives a list
        for name in ("epochs", "batch_size", "latent_dim", "final_kernel", "dense_units"):
            if getattr(self, name) <= 0:
                raise VaeDigitsError(f"--{name.replace('_', '-')} must be a positive integer")
        if len(self.filters) != 2 or not all(isinstance(f, int) and f > 0 for f in self.filters):
            raise VaeDigitsError("--filters must be two positive integers")
        if self.strategy not in STRATEGIES:
            raise VaeDigitsError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if not self.learning_rate > 0 or not self.beta >= 0:
            raise VaeDigitsError("--learning-rate must be > 0 and --beta must be >= 0")

    @property
    def architecture(self) -> Architecture:
        num_classes = NUM_CLASSES if self.model == "cvae" else None
        return Architecture(
            self.latent_dim, num_classes, self.filters, self.dense_units, final_kernel=self.final_kernel
        )


EpochReport = Callable[[dict], None]
StepProgress = Callable[[int, int, int], None]  # (epoch, step, steps per epoch)


def train(
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    report: EpochReport = print,
    progress: StepProgress | None = None,
    announce: Callable[[dict], None] | None = None,
) -> dict:
    """Train (or resume) the run in `out`; returns the summary stored in its config.json.

    `report` gets each epoch's row, `progress` each training step, `announce` the setup once.

    Example:
        >>> train(TrainConfig(model="cvae", epochs=1, data="mnist.npz"), Path("runs/cvae"))
    """
    out = Path(out)
    if resume and config.strategy == "multi-worker":
        raise VaeDigitsError(
            "--resume with --strategy multi-worker is not supported yet; start the run again, or resume it "
            "on one machine with --strategy default"
        )
    strategy = make_strategy(config.strategy)  # before any other TensorFlow op of the run
    chief = is_chief(strategy)  # only the chief writes the run directory
    record = _resume_record(out, config) if resume else None
    data = _load_data(config, record.get("data") if resume else None)  # before anything is written
    record = record or _new_record(out, config, create=chief)
    done = _completed_epochs(out)
    # the data as a name, size and sha256: a run directory (and the bundles made from it) never holds a
    # path of this machine; --resume takes --data again and must be given the same bytes
    record["data"] = {**data.provenance, "train": len(data.x_train), "test": len(data.x_test)}
    record["config"]["data"] = data.source
    record["setup"] = describe(strategy, config.strategy, config.batch_size)
    if chief:
        _write_record(out, record | {"status": "running"})
    if announce is not None:
        announce(record["setup"])

    keras.utils.set_random_seed(config.seed + done)
    with strategy.scope():  # the model's and the optimizer's variables are mirrored on every replica
        model = _load_checkpoint(out, done) if done else _compile(config)
        model.built = True  # its encoder and decoder are: spares fit a symbolic build the CVAE fails
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    conditional = config.model == "cvae"
    train_set = make_dataset(
        data.x_train,
        data.y_train,
        conditional=conditional,
        batch_size=config.batch_size,
        shuffle_seed=config.seed + done,
    )
    val_set = make_dataset(data.x_test, data.y_test, conditional=conditional, batch_size=config.batch_size)
    keeper = _RunKeeper(out, config, report, writes=chief)
    callbacks = [keeper]
    if progress is not None:
        callbacks.append(_StepProgress(progress, math.ceil(len(data.x_train) / config.batch_size)))
    if config.tensorboard and chief:
        from vae_train.tensorboard import TensorBoardLog

        num_classes = config.architecture.num_classes
        callbacks.append(TensorBoardLog(out, num_classes, config.latent_dim, config.seed))
    started = time.perf_counter()
    if done < config.epochs:  # else: killed after its last checkpoint, only the final files are missing
        model.fit(
            train_set,
            validation_data=val_set,
            epochs=config.epochs,
            initial_epoch=done,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )
    seconds = time.perf_counter() - started
    return _finish(out, model, record, seconds) if chief else _summary(keeper.rows, seconds)


class _StepProgress(keras.callbacks.Callback):
    def __init__(self, progress: StepProgress, steps: int):
        super().__init__()
        self.progress, self.steps, self.epoch = progress, steps, 0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.progress(self.epoch, batch + 1, self.steps)


def _load_data(config: TrainConfig, recorded: dict | None):
    """The run's MNIST; on resume it must be the data the run started with (same sha256)."""
    try:
        data = load_mnist(config.data)
    except VaeDigitsError:
        if recorded is None or config.data != recorded.get("name"):
            raise
        raise VaeDigitsError(
            f"this run was trained on {recorded['name']} (sha256 {str(recorded.get('sha256'))[:12]}...); "
            "pass --data PATH to it to resume"
        ) from None
    if recorded is not None and recorded.get("sha256") not in (None, data.sha256):
        raise VaeDigitsError(
            f"--data {config.data} is not the data this run was trained on ({recorded.get('name')}, "
            f"sha256 {recorded['sha256'][:12]}...); pass that file to resume"
        )
    return data


def _new_record(out: Path, config: TrainConfig, create: bool = True) -> dict:
    """A new run's record; with `create`, after claiming the run directory `out`."""
    if create and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VaeDigitsError(
            f"--out {out} already exists; pass --resume to continue it or choose a new --out"
        )
    try:
        if create:
            (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VaeDigitsError(f"cannot create --out {out} ({error.strerror})") from None
    return {
        "format": RUN_FORMAT,
        "config": asdict(config),
        "architecture": config.architecture.to_dict(),
        "versions": _versions(),
    }


def _resume_record(out: Path, config: TrainConfig) -> dict:
    record = read_run(out)
    done = _completed_epochs(out)
    finished = record.get("status") == "complete"
    if done > config.epochs or (finished and done == config.epochs):
        raise VaeDigitsError(f"run {out} already has {done} epochs; pass a larger --epochs to train on")
    record.pop("summary", None)
    return record | {"config": asdict(config)}


def resume_config(out: Path, overrides: dict) -> TrainConfig:
    """The stored config of run `out` with `overrides`; only settings that may change may differ."""
    stored = TrainConfig(**read_run(out)["config"])
    changed = [
        name
        for name, value in overrides.items()
        if name not in RESUMABLE_CHANGES and getattr(stored, name) != value
    ]
    if changed:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in changed)
        raise VaeDigitsError(f"{flags} differ from run {out}; drop them to resume it")
    return replace(stored, **overrides)


def read_run(out: Path) -> dict:
    """The config.json of a run directory, or a VaeDigitsError saying why it is not a run."""
    path = Path(out) / CONFIG_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise VaeDigitsError(f"{out} is not a vae-train run (no {CONFIG_FILE})") from None
    except (OSError, ValueError) as error:
        raise VaeDigitsError(f"cannot read {path} ({error})") from None
    if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
        raise VaeDigitsError(f"{path} is not a {RUN_FORMAT} run configuration")
    known = {f.name for f in fields(TrainConfig)}
    record["config"] = {k: v for k, v in record.get("config", {}).items() if k in known}
    return record


def _completed_epochs(out: Path) -> int:
    epochs = [int(p.stem.split("-")[1]) for p in (out / CHECKPOINTS).glob("epoch-*.keras")]
    return max(epochs, default=0)


def _checkpoint_path(out: Path, epoch: int) -> Path:
    return out / CHECKPOINTS / f"epoch-{epoch:04d}.keras"


def _compile(config: TrainConfig) -> keras.Model:
    model = build_model(config.architecture, beta=config.beta, seed=config.seed)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    return model


def _load_checkpoint(out: Path, epoch: int) -> keras.Model:
    path = _checkpoint_path(out, epoch)
    try:
        return keras.models.load_model(path)
    except Exception as error:  # a damaged zip or weights file can raise many types
        raise VaeDigitsError(f"cannot resume from {path} ({error})") from None


def _write_record(out: Path, record: dict) -> None:
    atomic_write_text(out / CONFIG_FILE, json.dumps(record, indent=2) + "\n")


def _save_model(model: keras.Model, path: Path) -> None:
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


def _write_history(out: Path, rows: list[dict]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [
        ",".join(f"{row[c]:.6g}" if c != "epoch" else str(row[c]) for c in HISTORY_COLUMNS) for row in rows
    ]
    atomic_write_text(out / HISTORY_FILE, "\n".join(lines) + "\n")


class _RunKeeper(keras.callbacks.Callback):
    """Writes the history row, then the checkpoint, after every epoch (`writes`: the chief's job);
    reports progress and keeps this session's rows."""

    def __init__(self, out: Path, config: TrainConfig, report: EpochReport, writes: bool = True):
        super().__init__()
        self.out, self.config, self.report, self.writes = out, config, report, writes
        self.rows: list[dict] = []

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
            _write_history(self.out, [*history, row])
            _save_model(self.model, _checkpoint_path(self.out, number))
            self._prune_checkpoints(number)
        self.report(row | {"epochs": self.config.epochs})

    def _prune_checkpoints(self, newest: int) -> None:
        keep = self.config.keep_checkpoints
        if keep > 0:
            for epoch in range(1, newest - keep + 1):
                _checkpoint_path(self.out, epoch).unlink(missing_ok=True)


def _finish(out: Path, model: keras.Model, record: dict, seconds: float) -> dict:
    for name, filename in MODEL_FILES.items():
        _save_model(model if name == "model" else getattr(model, name), out / filename)
    history = read_history(out)
    _plot_curves(history, out / CURVES_FILE)
    summary = _summary(history, seconds)
    _write_record(out, record | {"status": "complete", "summary": summary})
    return summary


def _summary(history: list[dict], seconds: float) -> dict:
    last = history[-1]
    return {
        "epochs": last["epoch"],
        "train": {loss: last[loss] for loss in LOSSES},
        "validation": {loss: last[f"val_{loss}"] for loss in LOSSES},
        "validation_split": "test",
        "seconds": round(sum(row["seconds"] for row in history), 2),
        "seconds_this_session": round(seconds, 2),
    }


def _plot_curves(history: list[dict], path: Path) -> None:
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


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }
