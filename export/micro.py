"""`vae-export c`: a decoder for microcontrollers (decoder.micro.tflite) and the C library generated from it.

decoder.micro.tflite is batch 1, one subgraph, int8 weights, activations, input and output, with
TensorFlow Lite Micro's ops only, calibrated on the encoder's latents of real training digits. Before
anything is written it runs in TFLM's own interpreter (the PyPI tflite-micro package): it must load,
its digits must be within the int8 bounds against the fp32 decoder, and the smallest arena it runs in
is recorded. The C sources (vae_export.c_code) come from that file and the prior of the bundle it
belongs to. The directory is written beside its target and renamed into place: nothing half-written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vae_export.c_code import (
    MODEL_SOURCE,
    CInfo,
    c_sources,
    check_micro_model,
    read_micro_model,
    static_bytes,
)
from vae_runtime.bundle import read_manifest, sha256_hex, verified_path
from vae_runtime.errors import VaeDigitsError, WorkError
from vae_runtime.manifest import MANIFEST, MAX_TEMPERATURE, ModelFile
from vae_runtime.prior import Prior

MICRO_FILE = "decoder.micro.tflite"
PRIOR_FILE = "prior.json"
FORMAT = "vae-digits-micro"
CHECK_SAMPLES = 256  # probe digits decoded by the TFLM interpreter at export (about 25 ms each)
CALIBRATION_DIGITS = 512
MAX_ARENA = 4 << 20
Report = Callable[[str], None]


@dataclass(frozen=True)
class Quantization:
    scale: np.float32
    zero_point: int


def export_c(
    run_dir: str | Path,
    bundle: str | Path,
    out: str | Path,
    *,
    data: str | None = None,
    max_ram: int | None = None,
    force: bool = False,
    report: Report = print,
) -> dict:
    """Write decoder.micro.tflite, its C library, firmware and CLI for run `run_dir` into `out`.

    `bundle` is the run's exported bundle (the same run_id): its labels, prior.json and default
    temperature go into the C library, and its manifest's sha256 names where the C came from.
    `max_ram`: fail when the C library's static RAM would be larger (bytes). Returns the written
    manifest (format "vae-digits-micro"): every file's sha256 and size, arena_bytes (the smallest TFLM
    arena that runs the file), c_static_bytes and the parity figures.

    Example:
        >>> manifest = export_c("runs/cvae-16d", "bundles/cvae-16d", "c")
        >>> manifest["arena_bytes"] > manifest["c_static_bytes"]
        True
    """
    from vae_export.bundle import check_target
    from vae_export.source import load_run

    out = Path(out).absolute()
    check_target(out)
    _check_replaceable(out, force)
    source = read_manifest(Path(bundle))
    for entry in source.files:
        verified_path(Path(bundle), entry)
    run = load_run(Path(run_dir))
    if source.run_id != run.run_id:
        raise VaeDigitsError(f"bundle {bundle} is of run {source.run_id}, not of {run_dir} ({run.run_id})")
    from vae_export.checks import calibration_feeds

    mnist = run.load_data(data)
    model_bytes = convert_micro(run.decoder, calibration_feeds(run, mnist, "decoder", CALIBRATION_DIGITS))
    report(f"convert   {MICRO_FILE:<22} {len(model_bytes)} bytes")
    model = read_micro_model(model_bytes)
    check_micro_model(model, run.latent_dim, run.num_classes)
    parity = check_against_fp32(model_bytes, run, mnist)
    arena = smallest_arena(model_bytes)
    report(f"validate  {MICRO_FILE:<22} TFLM: mean|diff| {parity['mean_abs_diff']:.4f}, arena {arena} bytes")
    prior = None
    if source.prior is not None:
        prior = Prior.load(Path(bundle) / source.prior.path, source.latent_dim, source.labels)
    info = CInfo(
        source.labels,
        source.default_temperature,
        MAX_TEMPERATURE,
        sha256_hex((Path(bundle) / MANIFEST).read_bytes()),
    )
    sources = c_sources(model_bytes, prior, info)
    ram = static_bytes(sources[MODEL_SOURCE])
    if max_ram is not None and ram > max_ram:
        raise WorkError(
            f"the C library needs {ram} bytes of static RAM, more than --max-ram {max_ram}; "
            "nothing was written"
        )
    report(f"generate  {MODEL_SOURCE:<22} static RAM {ram} bytes")
    files = {MICRO_FILE: model_bytes, **{name: text.encode() for name, text in sources.items()}}
    if source.prior is not None:
        files[PRIOR_FILE] = (Path(bundle) / source.prior.path).read_bytes()
    manifest = {
        "format": FORMAT,
        "format_version": 1,
        "kind": run.kind,
        "latent_dim": run.latent_dim,
        "labels": list(source.labels),
        "default_temperature": source.default_temperature,
        "max_temperature": MAX_TEMPERATURE,
        "run_id": run.run_id,
        "source_bundle_sha256": info.source_sha256,
        "arena_bytes": arena,
        "c_static_bytes": ram,
        "ops": [op.name for op in model.ops],
        "parity": parity,
        "files": [_file_entry(name, content) for name, content in sorted(files.items())],
    }
    _write_atomically(out, files, manifest)
    return manifest


def convert_micro(decoder, feeds: dict[str, np.ndarray]) -> bytes:
    """The batch-1 full-integer `decoder` (a Keras model), calibrated on `feeds` (its inputs by name:
    the encoder's latents of real training digits, and their labels)."""
    import tensorflow as tf

    from vae_export.tflite import _save_signatures, signature_key
    from vae_runtime.quiet import native_output_silenced

    def samples():
        for row in range(len(feeds["z"])):
            yield signature_key(1), {name: array[row : row + 1] for name, array in feeds.items()}

    with tempfile.TemporaryDirectory() as saved, native_output_silenced():
        _save_signatures(decoder, (1,), saved)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[signature_key(1)])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        try:
            return bytes(converter.convert())
        except Exception as error:  # the converter raises many types, with pages of MLIR
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise WorkError(
                f"the decoder cannot be converted to a full-integer TFLite file ({first})"
            ) from None


# ---- TFLM, the oracle ----


class Micro:
    """A decoder.micro.tflite in TensorFlow Lite Micro's interpreter: int8 latents and labels in."""

    def __init__(self, model_bytes: bytes, arena: int = MAX_ARENA):
        from tflite_micro.python.tflite_micro import runtime

        from vae_runtime.quiet import native_output_silenced

        model = read_micro_model(model_bytes)
        with native_output_silenced():
            self.interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena)
        order = {int(index): position for position, index in enumerate(_graph_inputs(model_bytes))}
        self.positions = {name: order[index] for name, index in model.inputs.items()}
        self.inputs = {
            name: Quantization(np.float32(model.tensors[i].scale[0]), int(model.tensors[i].zero_point[0]))
            for name, i in model.inputs.items()
        }
        out = model.tensors[model.output]
        self.output = Quantization(np.float32(out.scale[0]), int(out.zero_point[0]))

    def run_int8(self, z: np.ndarray, label: int | None) -> np.ndarray:
        """One digit's int8 output (784) for an int8 latent and a label (None for a plain VAE)."""
        self.interpreter.set_input(np.asarray(z, np.int8)[None], self.positions["z"])
        if label is not None:
            self.interpreter.set_input(self.label_input(label)[None], self.positions["label"])
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_output(0), np.int8).ravel()

    def label_input(self, label: int) -> np.ndarray:
        quantization = self.inputs["label"]
        classes = self._label_count()
        return quantize(np.eye(classes, dtype=np.float32)[label], quantization)

    def _label_count(self) -> int:
        return int(np.prod(self.interpreter.get_input_details(self.positions["label"])["shape"]))

    def decode(self, z: np.ndarray, label: int | None) -> np.ndarray:
        """Float latents (n, d) -> images in [0, 1] (n, 28, 28, 1), as the C library computes them."""
        quantized = quantize(np.asarray(z, np.float32), self.inputs["z"])
        images = [dequantize(self.run_int8(row, label), self.output) for row in quantized]
        return np.stack(images).reshape(-1, 28, 28, 1)


def quantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """float32 -> int8 as TFLM (and the C library) do: round(value / scale), halves away from zero."""
    scaled = np.asarray(values, np.float32) / quantization.scale
    magnitude = np.abs(scaled)
    whole = np.floor(magnitude)
    whole += magnitude - whole >= np.float32(0.5)
    rounded = np.copysign(whole, scaled)
    return np.clip(rounded + quantization.zero_point, -128, 127).astype(np.int8)


def dequantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    return (np.asarray(values, np.int32) - quantization.zero_point).astype(np.float32) * quantization.scale


def grey_levels(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """int8 outputs -> uint8 grey levels, in float32 as the C library's vae_digits_decode."""
    return np.rint(dequantize(values, quantization) * np.float32(255.0)).clip(0, 255).astype(np.uint8)


def _graph_inputs(model_bytes: bytes) -> list[int]:
    from ai_edge_litert import schema_py_generated as schema

    return [int(i) for i in schema.ModelT.InitFromPackedBuf(model_bytes, 0).subgraphs[0].inputs]


def check_against_fp32(model_bytes: bytes, run, mnist) -> dict:
    """The file's digits in TFLM against Keras's fp32 decoder on real and random latents; a WorkError
    when over the int8 bounds that decoder.int8.tflite meets."""
    from vae_export.checks import VARIANT_BOUNDS, compare, make_probe

    probe = make_probe(run, mnist)
    feeds, expected = probe.head("decoder", CHECK_SAMPLES)
    micro = Micro(model_bytes)
    labels = feeds["label"].argmax(axis=1) if "label" in feeds else [None] * CHECK_SAMPLES
    images = np.concatenate(
        [micro.decode(z[None], label) for z, label in zip(feeds["z"], labels, strict=True)]
    )
    figures = compare({"image": images}, expected)
    bounds = VARIANT_BOUNDS["decoder"]
    psnr = figures.get("psnr_db")
    if figures["mean_abs_diff"] > bounds["mean_abs_diff"] or (psnr is not None and psnr < bounds["psnr_db"]):
        raise WorkError(
            f"{MICRO_FILE} in TFLM is over the int8 bounds {bounds} against the fp32 decoder "
            f"(mean |diff| {figures['mean_abs_diff']:.4f}, PSNR {psnr} dB); nothing was written"
        )
    return {"reference": "keras fp32", "interpreter": "tflite-micro", "bounds": bounds, **figures}


def smallest_arena(model_bytes: bytes) -> int:
    """The smallest TFLM arena (to 16 bytes) in which the file loads and runs."""

    def runs(size: int) -> bool:
        try:
            micro = Micro(model_bytes, size)
            micro.interpreter.invoke()
        except (RuntimeError, ValueError):
            return False
        return True

    if not runs(MAX_ARENA):
        raise WorkError(
            f"{MICRO_FILE} does not load in the TFLM interpreter, even with a {MAX_ARENA}-byte arena"
        )
    low, high = 0, MAX_ARENA
    while high - low > 16:
        middle = (low + high) // 2
        low, high = (low, middle) if runs(middle) else (middle, high)
    return high


# ---- the directory ----


def _file_entry(name: str, content: bytes) -> dict:
    role = {MICRO_FILE: "decoder", PRIOR_FILE: "prior"}.get(name, "c")
    return {"path": name, "role": role, "sha256": sha256_hex(content), "size": len(content)}


def read_micro_manifest(directory: Path) -> dict:
    """The checked manifest of a `vae-export c` directory: every file's size and sha256 verified."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise VaeDigitsError(f"{directory} has no readable {MANIFEST} ({error})") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or manifest.get("format_version") != 1
    ):
        raise VaeDigitsError(f"{directory / MANIFEST} is not a {FORMAT} version 1 manifest")
    for entry in manifest["files"]:
        stand_in = ModelFile(
            entry["path"], "decoder", "tflite", "int8", (), (), entry["sha256"], entry["size"]
        )
        if "/" in entry["path"]:  # the firmware's files live one directory down
            verified_path(
                directory / Path(entry["path"]).parent, _renamed(stand_in, Path(entry["path"]).name)
            )
        else:
            verified_path(directory, stand_in)
    return manifest


def _renamed(entry: ModelFile, name: str) -> ModelFile:
    return replace(entry, path=name)


def refresh_sources(directory: Path, sources: dict[str, str]) -> None:
    """Rewrite the C sources of a `vae-export c` directory and their manifest entries (after a change
    to the templates; the model and prior stay), each file through a temporary one renamed into place."""
    manifest = read_micro_manifest(directory)
    entries = {entry["path"]: entry for entry in manifest["files"]}
    for name, text in sources.items():
        _replace(directory / name, text.encode())
        entries[name] = _file_entry(name, text.encode())
    manifest["files"] = [entries[name] for name in sorted(entries)]
    _replace(directory / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


def _replace(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_bytes(content)
    temporary.replace(path)


def _check_replaceable(out: Path, force: bool) -> None:
    if not out.exists() or not any(out.iterdir()) or force:
        return
    try:
        read_micro_manifest(out)
    except VaeDigitsError:
        raise VaeDigitsError(
            f"--out {out} exists and is not a {FORMAT} directory; pass --force to replace it"
        ) from None


def _write_atomically(out: Path, files: dict[str, bytes], manifest: dict) -> None:
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    stage.chmod(0o755)  # mkdtemp's 0700 would make the sources private
    try:
        for name, content in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_bytes(content)
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            stage.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
