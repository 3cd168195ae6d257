"""The two halves of scripts/check_arm.sh, run with the python of a venv that has the runtime.

    python scripts/arm_compare.py record DIR [--digits 200] [--per-label 100] [--data mnist.npz]
        [--backends onnx,tflite]
    python scripts/arm_compare.py compare ARM_DIR X86_DIR [--may-not-run PRECISION,...]
        [--without-xnnpack | --xnnpack-as-on-x86]

`record`, on the machine it runs on: `vae-generate` (seed 0) for every bundle embedded in vae_runtime, on
each of `--backends` and every shipped decoder precision; XNNPACK's share of the ops of every TFLite file;
and `vae-eval` of the default bundle. Into DIR: one .npy per call and record.json, which also lists the
files that the installed interpreter says it cannot run, with its one-line reason.

`compare` sets an ARM record (aarch64 or armv7l) beside an x86 one, prints a table and exits 1 with a
one-line reason unless: the numeric packages have the same versions; fp32 digits are at most one grey
level from x86's; every other precision is within its export's variant bounds (the manifest's
parity.bounds: mean absolute difference and PSNR on [0, 1]) against the fp32 digits of the same machine
and backend, on both machines; XNNPACK runs every op of every TFLite file on ARM but those it has no
kernel for, RESIZE_NEAREST_NEIGHBOR (unless
--without-xnnpack: tflite-runtime's armv7l wheel applies no XNNPACK; or, with --xnnpack-as-on-x86, the
ops it runs on x86: tflite-runtime 2.14's aarch64 and x86 wheels delegate the float files, not the int8
ones); vae-eval's accuracy on generated digits is within 0.2 points of x86's; and only the precisions
of `--may-not-run` are files that the interpreter cannot run.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

FP32_GREY_LEVELS = 1
ACCURACY_POINTS = 0.2
RECORD = "record.json"
PACKAGES = ("vae-digits", "numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime")
ARM_MACHINES = ("aarch64", "armv7l")
# the runtime's one line for a file that the installed TFLite interpreter is too old for
NOT_RUNNABLE = "needs a newer TFLite interpreter"


@dataclass(frozen=True)
class Call:
    """One vae-generate call: a bundle's decoder file on a backend."""

    bundle: str
    backend: str
    precision: str
    file: str
    bounds: dict[str, float]  # the export's variant bounds against fp32 ({} for fp32 itself)

    @property
    def name(self) -> str:
        return f"{self.bundle}-{self.backend}-{self.precision}"


def embedded_bundles() -> dict[str, Path]:
    """Every bundle shipped inside vae_runtime, by name."""
    root = Path(str(resources.files("vae_runtime") / "bundles"))
    return {path.name: path for path in sorted(root.iterdir()) if (path / "manifest.json").is_file()}


def calls(bundles: dict[str, Path], backends: tuple[str, ...]) -> list[Call]:
    from vae_runtime.bundle import read_manifest

    found = []
    for name, path in bundles.items():
        for entry in read_manifest(path).files:
            if entry.role == "decoder" and entry.format in backends:
                bounds = entry.parity.get("bounds", {}) if entry.precision != "fp32" else {}
                found.append(Call(name, entry.format, entry.precision, entry.path, bounds))
    return found


def record(out: Path, digits: int, per_label: int, data: Path, backends: tuple[str, ...]) -> None:
    """Run every call, the XNNPACK census and vae-eval here; write the digits and record.json to `out`."""
    from vae_runtime.bundle import embedded_bundle, read_manifest

    out.mkdir(parents=True, exist_ok=True)
    bundles = embedded_bundles()
    bin_dir = Path(sys.executable).parent
    timings, not_run = {}, {}
    for call in calls(bundles, backends):
        count = digits // max(read_manifest(bundles[call.bundle]).num_classes, 1)  # a CVAE: every label
        started = time.perf_counter()
        try:
            _run(bin_dir / "vae-generate", "--bundle", str(bundles[call.bundle]), "--backend", call.backend,
                 "--precision", call.precision, "--count", str(count), "--seed", "0",
                 "--out", str(out / f"{call.name}.npy"))  # fmt: skip
        except NotRunnableError as reason:
            not_run[call.name] = str(reason)
        timings[call.name] = round(time.perf_counter() - started, 1)
        print(f"  {call.name}: {not_run.get(call.name, f'{timings[call.name]} s')}", flush=True)
    xnnpack = {
        f"{name}/{entry.path}": list(_xnnpack_share(path / entry.path))
        for name, path in bundles.items()
        for entry in read_manifest(path).files
        if entry.format == "tflite" and "tflite" in backends
    }
    started = time.perf_counter()
    evaluated = _run(bin_dir / "vae-eval", str(embedded_bundle()), "--data", str(data),
                     "--per-label", str(per_label), "--json")  # fmt: skip
    timings["vae-eval"] = round(time.perf_counter() - started, 1)
    summary = {
        "machine": platform.machine(),
        "versions": {name: metadata.version(name) for name in PACKAGES if _installed(name)},
        "calls": [vars(call) for call in calls(bundles, backends)],
        "not_run": not_run,
        "seconds": timings,
        "xnnpack": xnnpack,
        "eval": {key: json.loads(evaluated)[key] for key in ("digits", "total_loss", "generation")},
    }
    (out / RECORD).write_text(json.dumps(summary, indent=2) + "\n")


class NotRunnableError(Exception):
    """The installed TFLite interpreter cannot run a file (the runtime's one-line reason)."""


def _installed(package: str) -> bool:
    try:
        metadata.version(package)
    except metadata.PackageNotFoundError:
        return False
    return True


def _run(*command: str | Path) -> str:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        if NOT_RUNNABLE in reason:
            raise NotRunnableError(reason)
        name = Path(command[0]).name
        raise SystemExit(f"arm_compare: FAILED: {name} exited {result.returncode}: {reason}")
    return result.stdout


def _xnnpack_share(path: Path) -> tuple[int, int]:
    """bench/run.py's census of the ops that the XNNPACK delegate runs (one implementation for both);
    (0, 0) for a file that the interpreter cannot load."""
    from vae_runtime.quiet import native_output_silenced

    try:
        with native_output_silenced():  # LiteRT announces its XNNPACK delegate on stderr
            share: tuple[int, int] = _bench().xnnpack_share(path)
    except (RuntimeError, ValueError) as error:
        if "Didn't find op" not in str(error):
            raise
        return (0, 0)
    return share


@functools.cache
def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).parents[1] / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(
    arm_dir: Path, x86_dir: Path, may_not_run: tuple[str, ...] = (), xnnpack: str = "all"
) -> list[str]:
    """Print the comparison; return the failures, one line each. `xnnpack`: the ops XNNPACK must run on
    ARM, "all", "as-on-x86" or "none" (printed, not judged)."""
    arm, x86 = (json.loads((where / RECORD).read_text()) for where in (arm_dir, x86_dir))
    machine = arm["machine"]
    failures = []
    if machine not in ARM_MACHINES:
        failures.append(f"the ARM record was made on {machine}, not on {' or '.join(ARM_MACHINES)}")
    shared = {name: x86["versions"].get(name) for name in arm["versions"]}
    if arm["versions"] != shared:
        failures.append(f"versions differ: {machine} {arm['versions']} vs x86 {shared}")
    print(f"versions: {', '.join(f'{k} {v}' for k, v in arm['versions'].items())}")
    not_run = arm["not_run"] | x86["not_run"]
    ran = [call for call in (Call(**c) for c in x86["calls"]) if call.name not in not_run]
    failures += _digit_table(ran, arm_dir, x86_dir, arm["seconds"], machine)
    failures += _not_run_table(arm["not_run"], x86["not_run"], may_not_run)
    xnnpack_failures = _xnnpack_table(arm["xnnpack"], x86["xnnpack"], machine, xnnpack == "as-on-x86")
    failures += xnnpack_failures if xnnpack != "none" else []
    failures += _eval_table(arm["eval"], x86["eval"], machine)
    return failures


def _not_run_table(arm: dict[str, str], x86: dict[str, str], may_not_run: tuple[str, ...]) -> list[str]:
    if arm or x86:
        print("\nnot run: the installed interpreter cannot open these files")
    failures = []
    for name in sorted(arm.keys() | x86.keys()):
        reason = arm.get(name) or x86[name]
        print(f"  {name}: {reason}")
        if name.rsplit("-", 1)[1] not in may_not_run:
            failures.append(f"{name} did not run: {reason}")
    return failures


def _digit_table(
    expected: list[Call], arm_dir: Path, x86_dir: Path, seconds: dict[str, float], machine: str
) -> list[str]:
    print(f"\n{'':<34}{f'{machine} vs x86':>17}{'mean |diff| vs fp32':>26}{'PSNR dB vs fp32':>23}")
    print(
        f"{'bundle':<9}{'backend':<8}{'precision':<10}{'digits':>7}{'max grey':>9}{'pixels':>8}"
        f"{machine:>10}{'x86':>8}{'bound':>7}{machine:>9}{'x86':>7}{'bound':>7}{f's {machine}':>11}"
    )
    failures = []
    for call in expected:
        arm, x86 = (np.load(where / f"{call.name}.npy") for where in (arm_dir, x86_dir))
        if arm.shape != x86.shape:
            failures.append(f"{call.name}: {machine} digits {arm.shape} vs x86 {x86.shape}")
            continue
        diff = np.abs(arm.astype(np.int16) - x86)
        line = f"{call.bundle:<9}{call.backend:<8}{call.precision:<10}{len(arm):>7}{diff.max():>9}"
        line += f"{np.mean(diff > 0):>8.2%}"
        if call.precision == "fp32":
            if diff.max() > FP32_GREY_LEVELS:
                failures.append(f"{call.name}: fp32 digits differ from x86's by {diff.max()} grey levels")
            line += f"{'-':>10}{'-':>8}{'-':>7}{'-':>9}{'-':>7}{'-':>7}"
        else:
            (arm_mean, arm_psnr), (x86_mean, x86_psnr) = figures = [
                _against_fp32(call, where) for where in (arm_dir, x86_dir)
            ]
            bounds = call.bounds
            line += f"{arm_mean:>10.4f}{x86_mean:>8.4f}{bounds['mean_abs_diff']:>7g}"
            line += f"{arm_psnr:>9.1f}{x86_psnr:>7.1f}{bounds['psnr_db']:>7g}"
            for where, (mean, psnr) in zip((machine, "x86"), figures, strict=True):
                if mean > bounds["mean_abs_diff"] or psnr < bounds["psnr_db"]:
                    failures.append(
                        f"{call.name} on {where}: {mean:.4f} mean |diff|, {psnr:.1f} dB from fp32 "
                        f"(bounds {bounds['mean_abs_diff']}, {bounds['psnr_db']} dB)"
                    )
        print(f"{line}{seconds.get(call.name, 0):>11.0f}")
    return failures


def _against_fp32(call: Call, where: Path) -> tuple[float, float]:
    """Mean absolute difference and PSNR (dB) of a variant's digits against the fp32 ones, on [0, 1]."""
    fp32 = np.load(where / f"{call.bundle}-{call.backend}-fp32.npy").astype(np.float64) / 255
    variant = np.load(where / f"{call.name}.npy").astype(np.float64) / 255
    mse = float(np.mean((variant - fp32) ** 2))
    return float(np.mean(np.abs(variant - fp32))), 10 * np.log10(1 / mse) if mse > 0 else float("inf")


def _xnnpack_table(
    arm: dict[str, list[int]], x86: dict[str, list[int]], machine: str, as_on_x86: bool
) -> list[str]:
    """The ops XNNPACK runs in each TFLite file; files that neither machine could load are left out."""
    print(f"\n{'TFLite file':<32}{f'XNNPACK ops {machine}':>20}{'x86':>8}")
    failures = []
    for name, (delegated, total) in x86.items():
        arm_delegated, arm_total = arm.get(name, (0, 0))
        if total == 0 and arm_total == 0:
            continue
        print(f"{name:<32}{f'{arm_delegated}/{arm_total}':>20}{f'{delegated}/{total}':>8}")
        expected = delegated if as_on_x86 else arm_total - _ops_without_xnnpack_kernel(name)
        if arm_total == 0 or arm_delegated != expected:
            failures.append(f"{name}: XNNPACK runs {arm_delegated} of {arm_total} ops on {machine}")
    return failures


# ops that LiteRT's XNNPACK delegate has no kernel for on any machine: TFLite's own kernels run them
NO_XNNPACK_KERNEL = {"RESIZE_NEAREST_NEIGHBOR"}  # the upsampling decoder's (cvae-tiny)


def _ops_without_xnnpack_kernel(name: str) -> int:
    """How many ops of the embedded TFLite file `name` ("bundle/file") are in NO_XNNPACK_KERNEL."""
    from vae_runtime.backends import tflite_interpreter
    from vae_runtime.bundle import embedded_bundle

    bundle, file = name.split("/", 1)
    interpreter = tflite_interpreter().Interpreter(model_path=str(embedded_bundle(bundle) / file))
    return sum(op["op_name"] in NO_XNNPACK_KERNEL for op in interpreter._get_ops_details())


def _eval_table(arm: dict[str, Any], x86: dict[str, Any], machine: str) -> list[str]:
    accuracy = [report["generation"]["accuracy"] * 100 for report in (arm, x86)]
    generated = x86["generation"]["generated_per_label"]
    print(
        f"\nvae-eval (default bundle, {x86['digits']} test digits, {generated} generated per label): "
        f"accuracy {accuracy[0]:.2f} % on {machine}, {accuracy[1]:.2f} % on x86; total loss "
        f"{arm['total_loss']:.3f} / {x86['total_loss']:.3f} nats"
    )
    if abs(accuracy[0] - accuracy[1]) > ACCURACY_POINTS:
        return [f"vae-eval accuracy {accuracy[0]:.2f} % on {machine} vs {accuracy[1]:.2f} % on x86"]
    return []


def _xnnpack_judged(args: argparse.Namespace) -> str:
    return "none" if args.without_xnnpack else "as-on-x86" if args.xnnpack_as_on_x86 else "all"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    recording = commands.add_parser("record", help="run the calls on this machine")
    recording.add_argument("out", type=Path)
    recording.add_argument("--digits", type=int, default=200, help="digits per vae-generate call")
    recording.add_argument("--per-label", type=int, default=100, help="vae-eval's generated digits per label")
    recording.add_argument("--data", type=Path, default=Path("tests/data/mnist_small.npz"))
    recording.add_argument("--backends", type=_names, default=("onnx", "tflite"), help="e.g. onnx,tflite")
    comparing = commands.add_parser("compare", help="compare an ARM record with an x86 one")
    comparing.add_argument("arm", type=Path)
    comparing.add_argument("x86", type=Path)
    comparing.add_argument("--may-not-run", type=_names, default=(), help="precisions, e.g. dynamic")
    comparing.add_argument(
        "--without-xnnpack",
        action="store_true",
        help="the ARM interpreter has no XNNPACK: print, do not judge",
    )
    comparing.add_argument(
        "--xnnpack-as-on-x86",
        action="store_true",
        help="XNNPACK runs the ops on ARM that it runs on x86 (an interpreter delegating float files only)",
    )
    args = parser.parse_args()
    if args.command == "record":
        record(args.out, args.digits, args.per_label, args.data, args.backends)
        return
    failures = compare(args.arm, args.x86, args.may_not_run, xnnpack=_xnnpack_judged(args))
    if failures:
        more = f" (and {len(failures) - 1} more above)" if len(failures) > 1 else ""
        for failure in failures:
            print(f"  failed: {failure}")
        sys.exit(f"arm_compare: FAILED: {failures[0]}{more}")
    print("\nARM check passed")


def _names(text: str) -> tuple[str, ...]:
    return tuple(name for name in text.split(",") if name)


if __name__ == "__main__":
    main()
