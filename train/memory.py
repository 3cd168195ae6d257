"""Running out of memory while a run builds or trains, said as one line naming the options to lower."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from vae_runtime.errors import WorkError
from vae_train.limits import option

if TYPE_CHECKING:
    from vae_train.config import TrainConfig

MEMORY_OPTIONS = {  # what to lower when memory runs out: the weights when building, also the batch in a step
    "building the model": ("filters", "dense_units", "latent_dim"),
    "training": ("batch_size", "filters", "dense_units"),
}


class OutOfMemoryError(WorkError):
    """The model or a training step did not fit in this machine's memory."""


@contextmanager
def memory_named(config: TrainConfig, stage: str, out: Path, done: int) -> Iterator[None]:
    """An out-of-memory error in `stage` as one line naming the options to lower (and their values)."""
    try:
        yield
    except (tf.errors.ResourceExhaustedError, MemoryError):
        names = MEMORY_OPTIONS[stage]
        given = [f"{option(name)} ({shown(getattr(config, name))})" for name in names]
        lower = f"{', '.join(given[:-1])} or {given[-1]}"
        unfinished = "" if done else f"; {out} holds no trained epoch: remove it before starting again"
        raise OutOfMemoryError(f"out of memory {stage}: lower {lower}{unfinished}") from None


def shown(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)
