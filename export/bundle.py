"""Writing a bundle atomically: stage beside the target, then swap it into place in one rename."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from vae_export.source import TrainedRun
from vae_runtime.bundle import read_manifest
from vae_runtime.errors import BundleError, VaeDigitsError
from vae_runtime.fileio import current_umask
from vae_runtime.manifest import MANIFEST, Manifest, ModelFile

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class BundleWriter:
    """Collects model files and their manifest entries in a staging directory.

    Use through `writing_bundle`, which starts from the bundle already at `out` when it holds
    the same run (so a second format adds to it) and swaps the result into place at the end.
    """

    def __init__(self, out: Path, run: TrainedRun, force: bool):
        self.out, self.run, self.force = out, run, force
        self.stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
        self.stage.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; a bundle is for sharing
        self.entries: dict[str, ModelFile] = {}
        self.omitted: dict[str, str] = {}  # file name -> why it was not written
        self.default_temperature = 1.0
        self.producer: dict[str, object] = {}
        self.committed: Manifest | None = None
        previous = _previous_bundle(out, run, force)
        if previous is not None:
            for entry in previous.files:
                shutil.copy2(out / entry.path, self.stage / entry.path)
                self.entries[entry.path] = entry
            self.producer = dict(previous.producer)
            self.omitted = {item["file"]: item["reason"] for item in previous.omitted}
            self.default_temperature = previous.default_temperature

    def claim(self, filename: str) -> Path:
        """The staging path for `filename`; refuses to replace an exported file without force."""
        if filename in self.entries and not self.force:
            raise VaeDigitsError(f"{self.out / filename} already exists; pass --force to replace it")
        self.entries.pop(filename, None)
        self.omitted.pop(filename, None)
        return self.stage / filename

    def add(self, entry: ModelFile) -> None:
        """Record a staged, checked file."""
        self.entries[entry.path] = entry

    def omit(self, filename: str, reason: str) -> None:
        """Record a variant that was made, checked and not shipped, and why."""
        self.omitted[filename] = reason

    def manifest(self) -> Manifest:
        run = self.run
        summary = run.record.get("summary", {})
        data = run.record.get("data", {})
        return Manifest(
            kind=run.kind,
            latent_dim=run.latent_dim,
            num_classes=run.num_classes,
            labels=tuple(str(i) for i in range(run.num_classes)),
            image_shape=(28, 28, 1),
            run_id=run.run_id,
            files=tuple(sorted(self.entries.values(), key=_file_order)),
            default_temperature=self.default_temperature,
            omitted=tuple({"file": name, "reason": why} for name, why in sorted(self.omitted.items())),
            training={
                **summary,
                "data_source": {key: data.get(key) for key in ("name", "size", "sha256")},
                "config": {key: value for key, value in run.record["config"].items() if key != "data"},
            },
            producer={**run.record.get("versions", {}), **self.producer},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def commit(self) -> Manifest:
        manifest = self.manifest()
        text = manifest.to_json()
        Manifest.from_dict(json.loads(text))  # never write a bundle that the runtime would refuse
        (self.stage / MANIFEST).write_text(text)
        _fsync_tree(self.stage)
        _swap_into_place(self.stage, self.out)
        self.committed = manifest
        return manifest


@contextlib.contextmanager
def writing_bundle(out: Path, run: TrainedRun, force: bool) -> Iterator[BundleWriter]:
    """Lock `out`, stage a bundle for it, and swap it into place only if the block succeeds."""
    out = Path(out).absolute()
    check_target(out)
    with _locked(out):
        _remove_stale_stages(out)
        writer = BundleWriter(out, run, force)
        try:
            yield writer
            writer.commit()
        finally:
            shutil.rmtree(writer.stage, ignore_errors=True)


def check_target(out: Path) -> None:
    """Refuse early an --out that cannot become a bundle; create its parent directories."""
    out = Path(out).absolute()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VaeDigitsError(f"cannot create the parent of --out {out} ({error.strerror})") from None
    if not os.access(out.parent, os.W_OK):
        raise VaeDigitsError(f"--out {out} is not writable (no write permission on {out.parent})")
    if out.exists() and not out.is_dir():
        raise VaeDigitsError(f"--out {out} exists and is not a directory")


def _previous_bundle(out: Path, run: TrainedRun, force: bool) -> Manifest | None:
    """The manifest of the bundle at `out` to add to, None to start afresh, or an error."""
    if not out.exists() or not any(out.iterdir()):
        return None
    try:
        previous = read_manifest(out)
    except BundleError as error:
        if force:
            return None
        raise VaeDigitsError(
            f"--out {out} exists and is not a usable bundle ({error}); pass --force to replace it"
        ) from None
    if previous.run_id != run.run_id:
        if force:
            return None
        raise VaeDigitsError(
            f"--out {out} holds a bundle of another run; pass --force to replace it or choose a new --out"
        )
    return previous


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    lock_path = out.with_name(f".{out.name}.lock")
    with lock_path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise VaeDigitsError(f"another export is writing {out}; try again when it ends") from None
        yield


def _remove_stale_stages(out: Path) -> None:
    """Staging directories left by a killed export (we hold the lock, so none is in use)."""
    for stale in out.parent.glob(f".{out.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _swap_into_place(stage: Path, out: Path) -> None:
    """Rename `stage` to `out`; an existing `out` is exchanged atomically and then removed."""
    if not out.exists():
        stage.rename(out)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    swapped = (
        hasattr(libc, "renameat2")
        and libc.renameat2(_AT_FDCWD, os.fsencode(stage), _AT_FDCWD, os.fsencode(out), _RENAME_EXCHANGE) == 0
    )
    if not swapped:  # no renameat2 here: two renames, with a moment where `out` is missing
        old = stage.with_name(stage.name + ".old")
        out.rename(old)
        stage.rename(out)
        stage = old
    shutil.rmtree(stage, ignore_errors=True)


def _fsync_tree(directory: Path) -> None:
    for path in [*directory.iterdir(), directory]:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _file_order(entry: ModelFile) -> tuple:
    return (entry.role, entry.format, not entry.default, entry.path)
