"""Time every model file of a bundle on this machine, and say which decoder to use for single digits and
which for bulk.

A bundle is made on one machine and runs on another, and which of its files is fastest depends on the
processor: the int8 TFLite decoder ran 4x fp32 on one x86 host and slower than fp32 on another. So the
choice is measured here, where the bundle runs, and never stored in the bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vae_runtime.backends import BACKENDS, INSTALL_HINT, Model, available, open_model
from vae_runtime.engine import best_time
from vae_runtime.errors import BundleError
from vae_runtime.generator import Generator
from vae_runtime.machine import this_machine
from vae_runtime.manifest import ROLES, ModelFile

BATCHES = (1, 16, 256)
SINGLE, BULK = BATCHES[0], BATCHES[-1]
Feeds = dict[str, np.ndarray]
Run = Callable[[Feeds], Feeds]


@dataclass(frozen=True)
class Timing:
    """One model file, run as a `Generator` runs it: rows per second at each batch size, here."""

    file: ModelFile
    per_second: dict[int, float]


@dataclass(frozen=True)
class Report:
    """Every timed file, the files that could not be timed here (and why), and the machine."""

    bundle: Path
    machine: str
    timings: list[Timing]
    skipped: dict[str, str]
    given: str = ""  # the bundle as the user named it ("": the default bundle)

    def fastest(self, batch: int) -> Timing:
        """The decoder that makes the most digits per second at `batch`."""
        decoders = [t for t in self.timings if t.file.role == "decoder"]
        return max(decoders, key=lambda t: t.per_second[batch])

    def use(self) -> dict[str, Timing]:
        """The decoder to use here for single digits, and for bulk."""
        return {"single": self.fastest(SINGLE), "bulk": self.fastest(BULK)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "machine": self.machine,
            "files": [
                {
                    "file": t.file.path,
                    "role": t.file.role,
                    "backend": t.file.format,
                    "precision": t.file.precision,
                    "bytes": t.file.size,
                    "per_second": {str(batch): round(rate, 1) for batch, rate in t.per_second.items()},
                }
                for t in self.timings
            ],
            "not_timed": self.skipped,
            "use": {
                what: {"file": t.file.path, "batch": batch, "command": advice(t, self.given)}
                for (what, t), batch in zip(self.use().items(), (SINGLE, BULK), strict=True)
            },
        }


def time_bundle(bundle: str | Path | None = None, rounds: int = 3, repeats: int = 5) -> Report:
    """Time each encoder and decoder file of `bundle` on its backend, if that is installed.

    Each file runs through a `Generator` on its backend (`decode` / `encode`: on onnxruntime a request's
    chunks spread over the cores), at batch 1, 16 and 256. Rounds interleave the files so that machine
    noise hits all alike; a figure is the best call of `repeats` in any round.
    """
    loaded = Generator.load(bundle)  # checks the manifest and every checksum
    runs: dict[tuple[str, int], tuple[Run, Feeds]] = {}
    files: dict[str, ModelFile] = {}
    skipped: dict[str, str] = {}
    for backend in BACKENDS:
        entries = [e for e in loaded.manifest.files if e.role in ROLES and e.format == backend]
        if entries and not available(backend):
            skipped |= {entry.path: INSTALL_HINT[backend] for entry in entries}
            continue
        base = Generator.load(loaded.bundle, backend=backend) if entries else loaded
        for entry in entries:
            try:
                model = _opened(base, entry)
            except BundleError as error:  # e.g. a file newer than the installed interpreter: say why
                skipped[entry.path] = str(error)
                continue
            is_decoder = entry.role == "decoder"
            generator = replace(base, decoder=model) if is_decoder else replace(base, encoder=model)
            runs |= {(entry.path, batch): _call(generator, entry.role, batch) for batch in BATCHES}
            files[entry.path] = entry
    best: dict[tuple[str, int], float] = {}
    for _ in range(rounds):
        for key, (run, feeds) in runs.items():
            seconds = best_time(run, feeds, repeats)
            best[key] = min(best.get(key, seconds), seconds)
    timings = [
        Timing(entry, {batch: batch / best[name, batch] for batch in BATCHES})
        for name, entry in files.items()
    ]
    return Report(loaded.bundle, this_machine(), timings, skipped, "" if bundle is None else str(bundle))


def _opened(generator: Generator, entry: ModelFile) -> Model:
    """A file opened as `Generator.load` opens its own: on onnxruntime one thread a session, since the
    Generator runs a request's chunks on every core at once; LiteRT with a thread per core."""
    return open_model(generator.bundle / entry.path, entry.format, 1 if entry.format == "onnx" else 0)


def _call(generator: Generator, role: str, batch: int) -> tuple[Run, Feeds]:
    """A request of `batch` rows to the generator's `role` model, and its inputs, drawn once."""
    rng = np.random.default_rng(batch)
    info = generator.manifest
    labels = rng.integers(0, info.num_classes, batch) if info.conditional else None
    if role == "decoder":

        def decode(feeds: Feeds) -> Feeds:
            return {"image": generator.decode(feeds["z"], labels)}

        return decode, {"z": rng.standard_normal((batch, info.latent_dim), dtype=np.float32)}

    def encode(feeds: Feeds) -> Feeds:
        z_mean, z_log_var = generator.encode(feeds["image"], labels)
        return {"z_mean": z_mean, "z_log_var": z_log_var}

    return encode, {"image": rng.integers(0, 256, (batch, 28, 28), dtype=np.uint8)}


def advice(timing: Timing, bundle: str) -> str:
    """The vae-generate command line that uses this decoder file of `bundle` ("": the default one)."""
    entry = timing.file
    options = [f"--bundle {bundle}"] if bundle else []
    options.append(f"--backend {entry.format}")
    if not entry.default:
        options.append(f"--precision {entry.precision}")
    return " ".join(["vae-generate", *options])
