"""The export pipeline shared by every format: convert, validate, quantize, time, then commit.

What a bundle holds depends only on the run and the options, never on the speed of the machine that
exports it: every variant within its quality bounds is written (or, with `only`, every file named).
Each file's speed on the export host is recorded as information, with the host (`measured_on`); which
file is fastest is measured where the bundle runs (`vae-bench`).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import keras
import numpy as np

from vae_export.bundle import check_target, writing_bundle
from vae_export.checks import (
    CALIBRATION_SAMPLES,
    Probe,
    calibration_feeds,
    check_fp32,
    check_variant,
    make_probe,
    measure_speed,
)
from vae_export.prior import fit_prior, prior_json
from vae_export.source import TrainedRun, load_run
from vae_runtime.backends import OnnxModel, TfliteModel, open_model
from vae_runtime.bundle import sha256_hex
from vae_runtime.engine import one_hot
from vae_runtime.errors import VaeDigitsError, WorkError
from vae_runtime.machine import this_machine
from vae_runtime.manifest import PRIOR, ROLES, Manifest, ModelFile, TensorSpec
from vae_runtime.prior import MAX_COMPONENTS
from vae_runtime.quiet import native_output_silenced

Report = Callable[[str], None]
PRIOR_FILE = "prior.json"


@dataclass(frozen=True)
class ExportStep:
    """One step of an export, as its `progress` callback gets it.

    Attributes:
        text: The line `vae-export` prints for it.
        done: The counted steps finished so far: each file converted, each file validated, the prior
            fitted.
        total: The counted steps of the whole export.
    """

    text: str
    done: int
    total: int


Progress = Callable[[ExportStep], None]


def lines(report: Report) -> Progress:
    """A `progress` callback that passes each step's line of text to `report`."""
    return lambda step: report(step.text)


class _Steps:
    """Counts the steps of an export and tells `progress` of each."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def counted(self, text: str) -> None:
        self.done += 1
        self.note(text)

    def note(self, text: str) -> None:
        if self.progress is not None:
            self.progress(ExportStep(text, self.done, self.total))


Calibration = Callable[[], dict[str, np.ndarray]]


class Format(Protocol):
    """How one file format converts a Keras model; see onnx.py and tflite.py."""

    @property
    def name(self) -> str:
        """The manifest's format name and the file extension."""
        ...

    def precisions(self, role: str) -> tuple[str, ...]:
        """fp32 first, then the variants this export writes for `role`."""
        ...

    def convert(
        self,
        model: keras.Model,
        run: TrainedRun,
        role: str,
        precision: str,
        path: Path,
        calibration: Calibration,
    ) -> None: ...

    def producer(self) -> dict[str, object]: ...

    def batch_sizes(self) -> tuple[int, ...]:
        """The static batch sizes of the written files, () for a dynamic batch."""
        ...


def export(
    run_dir: str | Path,
    out: str | Path,
    formats: list[Format],
    *,
    atol: float = 1e-4,
    force: bool = False,
    data: str | None = None,
    prior: int = 0,
    temperature: float | None = None,
    only: Collection[str] | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Export run `run_dir` to bundle `out` in each of `formats`; returns the written manifest.

    Every file is checked: fp32 against Keras (ParityError past `atol`), a quantized variant against
    fp32 (not written, and listed in the manifest's `omitted`, when over its bounds).
    prior: fit a Gaussian mixture of that many components per label to the training digits' latents
        and write it as prior.json, which `Generator.generate` then samples from (0: none, N(0, I)).
    temperature: the bundle's default sampling temperature (None: keep the bundle's, else 1.0).
    only: write just these model files (a lean bundle), e.g. {"decoder.int8.tflite",
        "encoder.int8.tflite"}; see `kept_files` for the rules. A named file over its bounds fails.
    progress: called with each `ExportStep` (None: silent).
    """
    if not atol > 0:
        raise VaeDigitsError(f"--atol must be a positive number, not {atol}")
    if not 0 <= prior <= MAX_COMPONENTS:
        raise VaeDigitsError(f"--prior must be 0-{MAX_COMPONENTS} components per label, not {prior}")
    check_target(Path(out))
    plan, kept = export_plan(formats, only)
    steps = _Steps(progress, 2 * len(plan) + bool(prior))
    run = load_run(Path(run_dir))
    mnist = run.load_data(data)
    probe = make_probe(run, mnist)
    with writing_bundle(Path(out), run, force) as bundle:
        paths = [bundle.claim(file_name(*step)) for step in plan]  # refuse overwrites up front
        prior_path = bundle.claim(PRIOR_FILE) if prior else None
        if temperature is not None:
            bundle.default_temperature = temperature
        fp32: dict[tuple[str, str], tuple[ModelFile, OnnxModel | TfliteModel]] = {}
        for file_format in formats:
            bundle.producer.update(file_format.producer())
        for (file_format, role, precision), path in zip(plan, paths, strict=True):
            started = time.perf_counter()
            with native_output_silenced():
                file_format.convert(
                    run.encoder if role == "encoder" else run.decoder,
                    run,
                    role,
                    precision,
                    path,
                    functools.partial(calibration_feeds, run, mnist, role, CALIBRATION_SAMPLES),
                )
            steps.counted(f"convert   {path.name:<22} {time.perf_counter() - started:6.1f}s")
            reference = fp32.get((file_format.name, role))
            entry, loaded, reason = _validated(path, file_format, role, precision, probe, atol, reference)
            steps.counted(_verdict(path.name, entry or reason))
            if entry is not None and precision == "fp32":  # an fp32 file is shipped or raises ParityError
                fp32[(file_format.name, role)] = (entry, loaded)
            if entry is None and only is not None:
                raise WorkError(f"{path.name} is {reason}, so it cannot be kept; nothing was written")
            if entry is None:
                path.unlink()
                bundle.omit(path.name, reason)
            elif path.name in kept:
                bundle.add(entry)
        for path in paths:  # fp32 files made only to check kept variants against (ONNX int8 reads them)
            if path.name not in kept:
                path.unlink()
        if prior_path is not None:
            bundle.add(_write_prior(run, mnist, prior, prior_path, steps.counted))
        _mark_defaults(bundle)
        for role in ROLES:
            _recommend_for_edge(bundle, role, steps.note)
    manifest = bundle.committed
    assert manifest is not None  # writing_bundle commits when its block ends without an error
    steps.note(summary_table(manifest))
    return manifest


Step = tuple[Format, str, str]  # (format, role, precision)


def export_plan(formats: list[Format], only: Collection[str] | None) -> tuple[list[Step], set[str]]:
    """The files to make, in order, and the names of those to keep (see `kept_files`)."""
    plan = [
        (file_format, role, precision)
        for file_format in formats
        for role in ROLES
        for precision in file_format.precisions(role)
    ]
    kept = kept_files([file_name(*step) for step in plan], only)
    return [step for step in plan if _needed(step, kept)], kept


def kept_files(names: list[str], only: Collection[str] | None) -> set[str]:
    """The model files to write, of `names` (what the export makes); a VaeDigitsError when `only` names
    a file it does not make, or leaves a bundle the runtime would refuse.

    A bundle holds an encoder and a decoder of each format it has, and one default file of each; the
    fp32 file is the default, or, when only one variant of that model is kept, that variant.
    """
    if only is None:
        return set(names)
    kept = set(only)
    unknown = sorted(kept - set(names))
    if unknown or not kept:
        what = f"makes no {unknown[0]!r}" if unknown else "needs at least one file name"
        raise VaeDigitsError(f"--only: this export {what}; it makes {', '.join(names)}")
    models = {_model_of(name) for name in kept}
    for role, suffix in sorted(models):
        other = "decoder" if role == "encoder" else "encoder"
        if (other, suffix) not in models:
            choices = " or ".join(name for name in names if _model_of(name) == (other, suffix))
            raise VaeDigitsError(
                f"--only keeps the {suffix} {role} but not the {suffix} {other}: a bundle holds both; "
                f"add {choices}"
            )
        same = sorted(name for name in kept if _model_of(name) == (role, suffix))
        if len(same) > 1 and f"{role}.{suffix}" not in same:
            raise VaeDigitsError(
                f"--only keeps {' and '.join(same)} without {role}.{suffix}: keep that too, or one of them "
                "(a bundle has one default file per model)"
            )
    return kept


def _model_of(name: str) -> tuple[str, str]:
    """decoder.int8.tflite -> ("decoder", "tflite")."""
    parts = name.split(".")
    return parts[0], parts[-1]


def _needed(step: Step, kept: set[str]) -> bool:
    """Whether to make a file: it is kept, or it is the fp32 file a kept variant is checked against."""
    file_format, role, precision = step
    if file_name(*step) in kept:
        return True
    variants = (file_name(file_format, role, other) for other in file_format.precisions(role))
    return precision == "fp32" and any(name in kept for name in variants)


def _mark_defaults(bundle) -> None:
    """A model without its fp32 file in a lean bundle: its one kept variant is the default."""
    for role, file_format in {(e.role, e.format) for e in bundle.entries.values() if e.role != PRIOR}:
        files = [e for e in bundle.entries.values() if (e.role, e.format) == (role, file_format)]
        if len(files) == 1 and not files[0].default:
            bundle.add(replace(files[0], default=True))


def _recommend_for_edge(bundle, role: str, report: Report) -> None:
    """Mark `role`'s full-integer int8 TFLite file, when the bundle has one (it is within its bounds).

    The rule has to hold on any machine, so it cannot be speed: whether int8 beats fp32 depends on the
    processor (4x faster on one x86 host, slower on another). What holds everywhere is what the file
    is: integer arithmetic end to end, the one kind of file that integer-only accelerators (NPUs, DSPs,
    microcontrollers) run, its weights and activations a byte a number. The smallest file is no such
    rule: the int8 file stores its weights once per static signature and is larger than the fp16 and
    dynamic-range ones, and an fp16 file runs as fp32 on most CPUs. Which file is fastest on a device:
    run `vae-bench` there.
    """
    entries = [e for e in bundle.entries.values() if e.role == role and e.format == "tflite"]
    for entry in entries:
        bundle.add(replace(entry, recommended=False))  # a previous export's choice is made again
    edge = next((e for e in entries if e.precision == "int8"), None)
    if edge is not None:
        bundle.add(replace(edge, recommended=True))
        report(
            f"recommend {edge.path:<22} integer-only: the file for edge devices (vae-bench times them all)"
        )


def _write_prior(run, mnist, components: int, path: Path, report: Report) -> ModelFile:
    """Fit the per-label mixture to the encoder's z_mean of the training digits; write prior.json."""
    started = time.perf_counter()
    feeds = {"image": (mnist.x_train.astype(np.float32) / 255.0)[..., None]}
    if run.conditional:
        feeds["label"] = one_hot(mnist.y_train, run.num_classes)
    z_mean = run.encoder.predict(feeds, batch_size=1024, verbose=0)["z_mean"]
    labels = mnist.y_train if run.conditional else None
    fitted = fit_prior(z_mean, labels, run.num_classes, components)
    names = tuple(str(i) for i in range(run.num_classes))
    fitted_on = {"split": "train", "digits": len(z_mean), "components": components, "seed": 0}
    path.write_text(json.dumps(prior_json(fitted, names, fitted_on)))
    report(
        f"fit       {path.name:<22} {time.perf_counter() - started:6.1f}s  {components} components per label"
    )
    return ModelFile(
        path=path.name,
        role=PRIOR,
        format="json",
        precision="fp32",
        inputs=(),
        outputs=(),
        sha256=sha256_hex(path.read_bytes()),
        size=path.stat().st_size,
        parity={"fitted_on": fitted_on},
    )


def file_name(file_format: Format, role: str, precision: str) -> str:
    """decoder.onnx for fp32; decoder.int8.tflite for a variant."""
    middle = "" if precision == "fp32" else f".{precision}"
    return f"{role}{middle}.{file_format.name}"


def _validated(
    path: Path,
    file_format: Format,
    role: str,
    precision: str,
    probe: Probe,
    atol: float,
    fp32: tuple[ModelFile, OnnxModel | TfliteModel] | None,
) -> tuple[ModelFile | None, OnnxModel | TfliteModel, str]:
    """Check one written file: (its manifest entry or None when over its bounds, the model, why not)."""
    model = open_model(path, file_format.name)
    if precision == "fp32":
        parity, within = check_fp32(model, probe, role, path.name, atol), True
    else:
        assert fp32 is not None  # the plan puts each role's fp32 file first: the reference of its variants
        parity, within = check_variant(model, fp32[1], probe, role)
    speed = {**measure_speed(model, probe, role), "measured_on": this_machine()}
    if fp32 is not None and precision != "fp32":
        speed["vs_fp32"] = round(speed["per_second"] / fp32[0].speed["per_second"], 3)
    if not within:
        return None, model, f"over its error bounds {parity['bounds']} against fp32"
    return _entry(path, file_format, role, precision, model, parity, speed), model, ""


def _entry(
    path: Path, file_format: Format, role: str, precision: str, model, parity: dict, speed: dict
) -> ModelFile:
    return ModelFile(
        path=path.name,
        role=role,
        format=file_format.name,
        precision=precision,
        inputs=_specs(model.input_shapes),
        outputs=_specs(model.output_shapes),
        sha256=sha256_hex(path.read_bytes()),
        size=path.stat().st_size,
        default=precision == "fp32",
        parity=parity,
        speed=speed,
        batch_sizes=file_format.batch_sizes(),
    )


def _verdict(name: str, outcome: ModelFile | str) -> str:
    if isinstance(outcome, str):
        return f"validate  {name:<22} not shipped: {outcome}"
    speed = f"{outcome.speed['per_second']:>9.0f}/s"
    return f"validate  {name:<22} max|diff| {outcome.parity['max_abs_diff']:.2e}  {speed}  ok"


def _specs(shapes: dict[str, tuple]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(name, tuple(shape)) for name, shape in sorted(shapes.items()))


def summary_table(manifest: Manifest) -> str:
    rows = [f"{'file':<24}{'precision':<10}{'max|diff|':>11}{'PSNR dB':>9}{'per s':>10}  note"]
    for entry in manifest.files:
        if entry.role == PRIOR:
            fitted = entry.parity["fitted_on"]
            rows.append(f"{entry.path:<24}{'gmm':<10}{fitted['components']:>11} components per label")
            continue
        psnr = entry.parity.get("psnr_db")
        rows.append(
            f"{entry.path:<24}{entry.precision:<10}{entry.parity['max_abs_diff']:>11.2e}"
            f"{psnr if psnr is not None else '-':>9}{entry.speed['per_second']:>10.0f}  {entry.note}"
        )
    rows += [f"{item['file']:<24}not written: {item['reason']}" for item in manifest.omitted]
    return "\n".join(rows)
