"""Training time-to-quality: the seed's reference loop against `vae-train`, on the full MNIST.

The target is the reference's validation total loss after 10 epochs. Its 10-epoch wall time is
timed, not assumed: a full run (--full-reference, ~8 minutes here) trains all 10 epochs and stores the
loss and time in bench/reference_result.json; the default run reuses that loss and re-times the
reference on two epochs (one before and one after vae-train, so that drift hits both), scaling them to
10 epochs (the first epoch, which pays for tracing, counts once). `vae-train` runs with its defaults,
validating every epoch, and stops at the first epoch whose validation total reaches the target.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from pathlib import Path

REFERENCE_EPOCHS = 10
RESULT_FILE = Path(__file__).with_name("reference_result.json")


def _reference_epoch(model, x_train, epochs_done: int) -> float:
    started = time.perf_counter()
    model.fit(x_train, epochs=epochs_done + 1, initial_epoch=epochs_done, batch_size=128, verbose=0)
    return time.perf_counter() - started


def run_reference(mnist, epochs: int = REFERENCE_EPOCHS) -> dict:
    """Train the reference for `epochs`; its per-epoch seconds and final validation losses."""
    from reference import reference_inputs, reference_model

    model = reference_model()
    x_train = reference_inputs(mnist.x_train, mnist.y_train)
    seconds = [_reference_epoch(model, x_train, done) for done in range(epochs)]
    x_test = reference_inputs(mnist.x_test, mnist.y_test)
    validation = model.evaluate(x_test, batch_size=128, verbose=0, return_dict=True)
    return {"epochs": epochs, "epoch_seconds": seconds, "validation": validation}


class _TargetReached(Exception):  # noqa: N818 (a signal, not an error)
    pass


def time_to_quality(mnist, data_path: str, target: float, epochs: int) -> dict:
    """`vae-train` (its defaults; stopped at the target, at most `epochs`) against two reference epochs."""
    from reference import reference_inputs, reference_model

    from vae_train.run import TrainConfig, train

    reference = reference_model()
    x_train = reference_inputs(mnist.x_train, mnist.y_train)
    first = _reference_epoch(reference, x_train, 0)

    rows: list[dict] = []
    started = time.perf_counter()

    def record(row: dict) -> None:
        rows.append(row | {"wall": time.perf_counter() - started})
        if row["val_total_loss"] <= target:
            raise _TargetReached

    with tempfile.TemporaryDirectory() as out, contextlib.suppress(_TargetReached):
        train(TrainConfig(epochs=epochs, data=data_path), Path(out) / "run", report=record)
    later = _reference_epoch(reference, x_train, 1)

    reached = next((row for row in rows if row["val_total_loss"] <= target), None)
    reference_seconds = first + (REFERENCE_EPOCHS - 1) * later
    ours = reached["wall"] if reached else None
    return {
        "target_val_total_loss": target,
        "reference_epoch_seconds": [first, later],
        "reference_seconds_to_target": reference_seconds,
        "vae_train_epochs": epochs,
        "vae_train_val_by_epoch": [round(row["val_total_loss"], 3) for row in rows],
        "vae_train_wall_by_epoch": [round(row["wall"], 1) for row in rows],
        "vae_train_epoch_reaching_target": reached["epoch"] if reached else None,
        "vae_train_seconds_to_target": ours,
        "vae_train_final_val_total_loss": rows[-1]["val_total_loss"],
        "ratio": ours / reference_seconds if ours else None,
    }


def stored_reference() -> dict | None:
    return json.loads(RESULT_FILE.read_text()) if RESULT_FILE.is_file() else None


def store_reference(result: dict, machine: str, date: str) -> None:
    RESULT_FILE.write_text(json.dumps(result | {"machine": machine, "date": date}, indent=2) + "\n")
