"""The export pipeline shared by every format: convert, validate, quantize, time, then commit."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import replace
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
from vae_runtime.errors import VaeDigitsError
from vae_runtime.generator import one_hot
from vae_runtime.manifest import PRIOR, ROLES, Manifest, ModelFile, TensorSpec, sha256_hex
from vae_runtime.prior import MAX_COMPONENTS
from vae_runtime.quiet import native_output_silenced

Report = Callable[[str], None]
PRIOR_FILE = "prior.json"
Calibration = Callable[[], dict[str, np.ndarray]]


class Format(Protocol):
    """How one file format converts a Keras model; see onnx.py and tflite.py."""

    @property
    def name(self) -> str:
        """The manifest's format name and the file extension."""
        ...

    @property
    def keep_slower(self) -> bool:
        """Ship variants slower than fp32 (they were asked for by name)."""
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
    report: Report = print,
) -> Manifest:
    """Export run `run_dir` to bundle `out` in each of `formats`; returns the written manifest.

    prior: fit a Gaussian mixture of that many components per label to the training digits' latents
        and write it as prior.json, which `Generator.generate` then samples from (0: none, N(0, I)).
    temperature: the bundle's default sampling temperature (None: keep the bundle's, else 1.0).
    """
    if not atol > 0:
        raise VaeDigitsError(f"--atol must be a positive number, not {atol}")
    if not 0 <= prior <= MAX_COMPONENTS:
        raise VaeDigitsError(f"--prior must be 0-{MAX_COMPONENTS} components per label, not {prior}")
    check_target(Path(out))
    run = load_run(Path(run_dir))
    mnist = run.load_data(data)
    probe = make_probe(run, mnist)
    plan = [
        (file_format, role, precision)
        for file_format in formats
        for role in ROLES
        for precision in file_format.precisions(role)
    ]
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
            report(f"convert   {path.name:<22} {time.perf_counter() - started:6.1f}s")
            reference = fp32.get((file_format.name, role))
            entry, loaded, reason = _validated(path, file_format, role, precision, probe, atol, reference)
            report(_verdict(path.name, entry or reason))
            if entry is not None and precision == "fp32":  # an fp32 file is shipped or raises ParityError
                fp32[(file_format.name, role)] = (entry, loaded)
            if entry is None:
                path.unlink()
                bundle.omit(path.name, reason)
            else:
                bundle.add(entry)
        if prior_path is not None:
            bundle.add(_write_prior(run, mnist, prior, prior_path, report))
        for role in ROLES:
            _recommend_for_edge(bundle, role, report)
    manifest = bundle.committed
    assert manifest is not None  # writing_bundle commits when its block ends without an error
    report(summary_table(manifest))
    return manifest


def _recommend_for_edge(bundle, role: str, report: Report) -> None:
    """Mark the fastest TFLite variant of `role`, if it is RECOMMEND_SPEEDUP x fp32 or more."""
    entries = [e for e in bundle.entries.values() if e.role == role and e.format == "tflite"]
    for entry in entries:
        bundle.add(replace(entry, recommended=False))  # a previous export's choice is made again
    fastest = max((e for e in entries if not e.default), key=lambda e: e.speed["vs_fp32"], default=None)
    if fastest is not None and fastest.speed["vs_fp32"] >= RECOMMEND_SPEEDUP:
        bundle.add(replace(fastest, recommended=True))
        report(
            f"recommend {fastest.path:<22} {fastest.speed['vs_fp32']:.2f}x fp32: the file for edge devices"
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


RECOMMEND_SPEEDUP = 1.3  # an edge variant this much faster than fp32 (within its bounds) is recommended


def _validated(
    path: Path,
    file_format: Format,
    role: str,
    precision: str,
    probe: Probe,
    atol: float,
    fp32: tuple[ModelFile, OnnxModel | TfliteModel] | None,
) -> tuple[ModelFile | None, OnnxModel | TfliteModel, str]:
    """Check one written file: (its manifest entry or None when not shipped, the model, why not)."""
    model = open_model(path, file_format.name)
    if precision == "fp32":
        parity = check_fp32(model, probe, role, path.name, atol)
        speed = measure_speed(model, probe, role)
        return _entry(path, file_format, role, precision, model, parity, speed), model, ""
    assert fp32 is not None  # the plan puts each role's fp32 file first: the reference of its variants
    fp32_entry, fp32_model = fp32
    parity, within = check_variant(model, fp32_model, probe, role)
    speed = measure_speed(model, probe, role)
    fp32_speed = fp32_entry.speed["per_second"]
    speed["vs_fp32"] = round(speed["per_second"] / fp32_speed, 3)
    if not within:
        return None, model, f"over its error bounds {parity['bounds']} against fp32"
    slower = f"slower than fp32 here ({speed['per_second']:g} vs {fp32_speed:g}/s)"
    if speed["vs_fp32"] < 1 and not file_format.keep_slower:
        return None, model, f"{slower}; export it by name to keep it"
    entry = _entry(path, file_format, role, precision, model, parity, speed)
    note = f"{slower}: not default" if speed["vs_fp32"] < 1 else ""
    return replace(entry, default=False, note=note), model, ""


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
