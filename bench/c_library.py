"""One digit at a time on this machine: the C library (c/, built with the host compiler) against the TFLM
interpreter on the same decoder.micro.tflite (the baseline) and the Python runtime's fp32 ONNX decoder,
in interleaved rounds; then the Cortex-M4 firmware's instructions per digit under QEMU -icount.

    python bench/c_library.py [--rounds 5] [--digits 40] [--no-firmware] [--c-dir DIR --bundle BUNDLE]

--c-dir is another `vae-export c` output (default: c/, the default bundle's library) and --bundle the
bundle it was made from, for the Python row (default: cvae-16d).

Prints the median time per digit and its ratio to TFLM, and the load average (run it on a quiet
machine). The firmware figures need gcc-arm-none-eabi and qemu-system-arm.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vae_export.micro import MICRO_FILE, Micro, quantize
from vae_runtime.generator import Generator

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "c"  # the default bundle's library
TICK_INSTRUCTIONS = 40  # -icount shift=0: 1 ns an instruction; the mps2-an386 SysTick counts at 25 MHz


def contenders(c_dir: Path, bundle: str, build: Path) -> dict[str, Callable[[int], object]]:
    library = ctypes.CDLL(str(build / "libvae_digits.so"))
    library.vae_digits_generate.argtypes = [
        ctypes.c_int,
        ctypes.c_uint64,
        ctypes.c_uint32,
        ctypes.c_double,
        ctypes.c_void_p,
    ]
    image = np.zeros(784, np.uint8)
    micro = Micro((c_dir / MICRO_FILE).read_bytes())
    python = Generator.load(bundle, backend="onnx")
    z = quantize(np.zeros(python.manifest.latent_dim, np.float32), micro.inputs["z"])
    temperature = python.manifest.default_temperature
    return {
        "TFLM interpreter (baseline)": lambda i: micro.run_int8(z, i % 10),
        "C library": lambda i: library.vae_digits_generate(i % 10, i, 0, temperature, image.ctypes.data),
        "Python runtime, fp32 ONNX": lambda i: python.generate(i % 10, seed=i),
    }


def per_digit(run: Callable[[int], object], digits: int) -> float:
    started = time.perf_counter()
    for i in range(digits):
        run(i)
    return (time.perf_counter() - started) / digits


def firmware(c_dir: Path, build: Path) -> str:
    subprocess.run(["make", "-C", str(c_dir), f"OUT={build}", "-s", "firmware"], check=True)
    run = subprocess.run(
        ["make", "-C", str(c_dir), f"OUT={build}", "-s", "run-firmware"],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    ticks = [int(t) for t in re.findall(r"^digit \d+ ticks (\d+)", run.stdout, re.M)]
    stack = re.search(r"stack_used (\d+)", run.stdout)
    size = subprocess.run(["arm-none-eabi-size", str(build / "firmware.elf")], capture_output=True, text=True)
    text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
    instructions = statistics.median(ticks) * TICK_INSTRUCTIONS
    return (
        f"Cortex-M4 (QEMU mps2-an386, -icount): {instructions / 1e6:.1f} M instructions a digit "
        f"(median of {len(ticks)}), {instructions / 64e6 * 1000:.0f} ms at 64 MHz and 1 instruction a "
        f"cycle; flash {text + data} bytes, RAM {data + bss} bytes static + {stack[1] if stack else '?'} "
        "bytes of stack"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--digits", type=int, default=40)
    parser.add_argument("--no-firmware", action="store_true")
    parser.add_argument("--c-dir", type=Path, default=C_DIR, help="a vae-export c output (default: c/)")
    parser.add_argument("--bundle", default="cvae-16d", help="the bundle --c-dir was made from")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        build = Path(scratch)
        subprocess.run(["make", "-C", str(args.c_dir), f"OUT={build}", "-s"], check=True)
        runs = contenders(args.c_dir, args.bundle, build)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                times[name].append(per_digit(run, args.digits))
        baseline = statistics.median(times["TFLM interpreter (baseline)"])
        load = os.getloadavg()[0]
        print(f"one digit at a time, median of {args.rounds} rounds of {args.digits} (load {load:.2f})")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:<30} {median * 1000:8.2f} ms   x{baseline / median:6.1f} vs TFLM")
        if not args.no_firmware:
            print(firmware(args.c_dir, build))


if __name__ == "__main__":
    main()
