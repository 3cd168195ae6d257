"""A training run: a directory that holds the models, config.json, history.csv, curves and checkpoints.

A run is finished only when config.json says `"status": "complete"`; every file is written to a
temporary name and renamed into place, so a killed run is resumable from its last checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vae_runtime.errors import VaeDigitsError
from vae_runtime.mnist import Mnist
from vae_train.config import RESUMABLE_CHANGES, TrainConfig
from vae_train.data import batches, examples, load_mnist
from vae_train.distribute import (
    agree,
    describe,
    is_chief,
    is_other_worker,
    make_strategy,
    take_chiefs_state,
)
from vae_train.memory import memory_named
from vae_train.rundir import (
    CONFIG_FILE,
    CURVES_FILE,
    MODEL_FILES,
    RUN_FORMAT,
    EpochReport,
    RunKeeper,
    StepCallback,
    StepProgress,
    check_checkpoint,
    checkpoint_path,
    claim,
    completed_epochs,
    holds_files,
    plot_curves,
    read_history,
    restore,
    run_summary,
    save_model,
    versions,
    write_record,
)


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

    `report` gets each epoch's row, `progress` each training step (on the chief), `announce` the
    setup once. Under multi-worker every worker calls this; the chief alone writes `out`.

    Example:
        >>> train(TrainConfig(model="cvae", epochs=1, data="mnist.npz"), Path("runs/cvae"))
    """
    out = Path(out)
    strategy = make_strategy(config.strategy)  # before any other TensorFlow op of the run
    chief = is_chief(strategy)  # only the chief writes the run directory
    try:
        start = _prepare(config, out, resume, chief)
    except VaeDigitsError as error:
        agree(strategy, {"error": str(error)})  # the other workers stop too, instead of waiting forever
        raise
    config, start = _follow_the_chief(strategy, chief, config, start)
    setup = describe(strategy, config.strategy, config.batch_size)
    if chief:
        # the data as a name, size and sha256: a run directory (and the bundles made from it) never
        # holds a path of this machine; --resume takes --data again and must be given the same bytes
        data = start.data
        start.record |= {"setup": setup, "status": "running"}
        start.record["data"] = {**data.provenance, "train": len(data.x_train), "test": len(data.x_test)}
        start.record["config"] = asdict(config) | {"data": data.source}
        write_record(out, start.record)
    if announce is not None:
        announce(setup)
    with _precision(config.mixed_precision):
        with memory_named(config, "building the model", out, start.done):
            model = _build(strategy, config, out if chief else None, start)
        keeper = RunKeeper(out, config, report, writes=chief, history=start.history)
        started = time.perf_counter()
        with memory_named(config, "training", out, start.done):
            _fit(model, config, start, _callbacks(config, out, start, keeper, progress))
        seconds = time.perf_counter() - started
        return (
            _finish(out, model, config, start.record, seconds) if chief else run_summary(keeper.rows, seconds)
        )


@dataclass
class _Start:
    """Where a worker starts: the run's record (the chief's), the data, the epochs already done and the
    last history row."""

    record: dict
    data: Mnist
    done: int = 0
    history: list[dict] = field(default_factory=list)


def _prepare(config: TrainConfig, out: Path, resume: bool, chief: bool) -> _Start:
    """Checks what this worker was given and loads its data; writes nothing but the empty run directory."""
    if config.mixed_precision and not _has_gpu():
        raise VaeDigitsError(
            "--mixed-precision needs a GPU: float16 maths on a CPU is far slower (about 60x here)"
        )
    if not chief:  # it takes the run from the chief
        return _Start({}, load_mnist(config.data))
    resume = resume or _restarted(out, config)
    record = _resume_record(out, config) if resume else _new_record(out, config)
    data = _load_data(config, record.get("data") if resume else None)
    claim(out)
    done = completed_epochs(out)
    if done:
        check_checkpoint(checkpoint_path(out, done))
    return _Start(record, data, done, read_history(out)[-1:] if done else [])


def _has_gpu() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


def _restarted(out: Path, config: TrainConfig) -> bool:
    """Whether `out` holds this very multi-worker run, interrupted: a worker restarted with the same
    command (as a cluster restarts it) continues the run."""
    if config.strategy != "multi-worker" or not (out / CONFIG_FILE).is_file():
        return False
    record = read_run(out)
    stored = replace(TrainConfig(**record["config"]), data=config.data)
    return record.get("status") == "running" and stored == config


def _follow_the_chief(
    strategy: tf.distribute.Strategy, chief: bool, config: TrainConfig, start: _Start
) -> tuple[TrainConfig, _Start]:
    """Every worker trains with the chief's settings from the chief's epoch, on the same data; a worker
    that could not start stops them all. One worker: nothing changes."""
    settings = {name: value for name, value in asdict(config).items() if name != "data"}
    note = {"chief": chief, "settings": settings, "data": start.data.provenance}
    notes = agree(strategy, note | {"done": start.done, "history": start.history})
    failed = [other["error"] for other in notes if "error" in other]
    if failed:
        raise VaeDigitsError(f"another worker could not start: {failed[0]}")
    chiefs = next(other for other in notes if other["chief"])
    ours = chiefs["data"]
    for theirs in (other["data"] for other in notes):
        if (theirs["size"], theirs["sha256"]) != (ours["size"], ours["sha256"]):
            raise VaeDigitsError(
                f"a worker's --data ({theirs['name']}) is not the chief's ({ours['name']}, sha256 "
                f"{str(ours['sha256'])[:12]}...); give every worker the same file"
            )
    start = replace(start, done=chiefs["done"], history=chiefs["history"])
    return replace(config, **chiefs["settings"]), start


@contextmanager
def _precision(mixed: bool):
    """Keras's dtype policy while the run builds and trains (mixed_float16: float16 maths, float32
    weights), restored afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _build(strategy: tf.distribute.Strategy, config: TrainConfig, checkpoints: Path | None, start: _Start):
    """The model and its optimizer, mirrored on every replica, every worker holding the chief's state.

    Every worker builds the same fresh model (creating variables is itself a collective step under
    multi-worker), the chief loads its last checkpoint into it, and the others take the chief's values.
    """
    keras.utils.set_random_seed(config.seed)
    steps = _steps_per_epoch(config, start)
    with strategy.scope():
        model = config.build_model(steps)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate_at(steps)))
        model.optimizer.build(model.trainable_variables)
    if checkpoints is not None and start.done:  # outside the scope: making a variable in it is collective
        restore(model, checkpoint_path(checkpoints, start.done))
    take_chiefs_state(strategy, model.variables + model.optimizer.variables)
    return model


def _callbacks(
    config: TrainConfig, out: Path, start: _Start, keeper: RunKeeper, progress: StepProgress | None
) -> list[keras.callbacks.Callback]:
    """The run keeper, and on the chief the step progress and the TensorBoard log."""
    callbacks: list[keras.callbacks.Callback] = [keeper]
    chief = keeper.writes
    if progress is not None and chief:
        callbacks.append(StepCallback(progress, _steps_per_epoch(config, start)))
    if config.tensorboard and chief:
        from vae_train.tensorboard import TensorBoardLog

        callbacks.append(TensorBoardLog(out, config.architecture.num_classes, config.latent_dim, config.seed))
    return callbacks


def _steps_per_epoch(config: TrainConfig, start: _Start) -> int:
    return math.ceil(len(start.data.x_train) / config.batch_size)


def _fit(model: keras.Model, config: TrainConfig, start: _Start, callbacks: list) -> None:
    """Train the epochs not done yet (none: the run was killed after its last checkpoint).

    Each epoch's order of the digits depends on the seed and the epoch alone, so a resumed run trains
    on exactly what the uninterrupted run would have.
    """
    conditional, data = config.model == "cvae", start.data
    train_digits = examples(data.x_train, data.y_train, conditional)
    val_set = batches(examples(data.x_test, data.y_test, conditional), config.batch_size)
    for epoch in range(start.done, config.epochs):
        model.fit(
            batches(train_digits, config.batch_size, shuffle_seed=_shuffle_seed(config.seed, epoch)),
            validation_data=val_set,
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )


def _shuffle_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


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


def _new_record(out: Path, config: TrainConfig) -> dict:
    """A new run's record, when `out` can be its run directory."""
    if out.exists() and (not out.is_dir() or holds_files(out)):
        raise VaeDigitsError(
            f"--out {out} already exists; pass --resume to continue it or choose a new --out"
        )
    return {
        "format": RUN_FORMAT,
        "config": asdict(config),
        "architecture": config.architecture.to_dict(),
        "versions": versions(),
    }


def _resume_record(out: Path, config: TrainConfig) -> dict:
    record = read_run(out)
    done = completed_epochs(out)
    finished = record.get("status") == "complete"
    if done > config.epochs or (finished and done == config.epochs):
        raise VaeDigitsError(f"run {out} already has {done} epochs; pass a larger --epochs to train on")
    record.pop("summary", None)
    return record | {"config": asdict(config)}


def resume_config(out: Path, overrides: dict) -> TrainConfig:
    """The stored config of run `out` with `overrides`; only settings that may change may differ.

    A multi-worker worker other than the chief may have no copy of the run: it takes the run's
    settings from the chief when training starts.

    Example:
        >>> resume_config(Path("runs/cvae"), {"epochs": 40}).epochs
        40
    """
    if is_other_worker() and not (Path(out) / CONFIG_FILE).exists():
        return TrainConfig(**{**overrides, "strategy": "multi-worker"})
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


def _finish(out: Path, model: keras.Model, config: TrainConfig, record: dict, seconds: float) -> dict:
    final = _in_float32(model, config)
    for name, filename in MODEL_FILES.items():
        save_model(final if name == "model" else getattr(final, name), out / filename)
    history = read_history(out)
    plot_curves(history, out / CURVES_FILE)
    summary = run_summary(history, seconds)
    write_record(out, record | {"status": "complete", "summary": summary})
    return summary


def _in_float32(model: keras.Model, config: TrainConfig) -> keras.Model:
    """The model to export: after mixed precision, a float32 copy (the weights are float32 already)."""
    if not config.mixed_precision:
        return model
    with _precision(mixed=False):
        copy = config.build_model(steps_per_epoch=1)  # the warm-up's length does not matter to an export
    copy.set_weights(model.get_weights())
    return copy
