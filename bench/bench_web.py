"""Measure the demo page (web/) in headless Chromium: speed, start-up and page weight.

    python bench/bench_web.py [--bundle cvae-16d] [--bundle cvae] [--rounds 5] [--loads 5] [--json FILE]

Needs chromium (apt-get install chromium), playwright (pip) and web/node_modules (npm ci in web/).
The site is built into a temporary directory and served on 127.0.0.1 with COOP/COEP. For each bundle,
two pages run side by side, one on a single WebAssembly thread and one on a thread per core; the
rounds alternate between them so that machine noise hits both alike, and each figure is the median
over rounds:
- digits/s at batch 256: `Generator.decode` of 256 latents, in the page;
- one latent-pad update: what a drag does, decode the pad's z for its label and draw the digit (median
  and 95th percentile over 200 moves), and with the ten-label strip a CVAE draws when the drag pauses;
- the baseline, in the same rounds: the bundle's decoder.onnx on Python's onnxruntime with the same
  thread counts (batch 256 digits/s; the single-digit call for the pad column);
- page load to first digit: from navigation start to the pad's first digit drawn, a fresh browser
  context each time (nothing cached), median of --loads; and a reload with the cache warm;
- page weight: bytes transferred for a first visit (Resource Timing, headers included) from
  `site.py serve`, which sends the build's brotli copies to Chromium (goal: at most 5 MB for cvae);
  beside it what the same files weigh uncompressed (the server before it compressed) and as gzip.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime

from vae_runtime.generator import Generator
from vae_runtime.machine import this_machine

WEB = Path(__file__).resolve().parent.parent / "web"
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BATCH = 256
PAD_MOVES = 200
PAD_GOAL_MS = 16.0
FIRST_DIGIT_GOAL_MS = 1500.0
FIRST_VISIT_GOAL_BYTES = 5e6

THROUGHPUT = """async ([batch, seconds]) => {
    const g = window.vaeDigits.generator;
    const d = g.latentDim;
    const z = Float32Array.from({ length: batch * d }, (_, i) => Math.sin(i * 12.9898) * 2);
    const labels = g.conditional ? Array.from({ length: batch }, (_, i) => i % 10) : null;
    await g.decode(z, labels);  // warm up: the first call allocates
    let calls = 0;
    const started = performance.now();
    while (performance.now() - started < seconds * 1000) { await g.decode(z, labels); calls++; }
    return (calls * batch) / ((performance.now() - started) / 1000);
}"""
PAD_UPDATES = """async (moves) => {
    const range = window.vaeDigits.state.range;
    await window.vaeDigits.padUpdate(0, 0);
    const times = [];
    for (let i = 0; i < moves; i++) {
        const angle = (2 * Math.PI * i) / moves;
        const [x, y] = [0.8 * range * Math.cos(angle), 0.8 * range * Math.sin(angle)];
        times.push(await window.vaeDigits.padUpdate(x, y));
    }
    return times;
}"""
FETCHED = """() => performance.getEntriesByType("navigation")
    .concat(performance.getEntriesByType("resource"))
    .map((entry) => [new URL(entry.name).pathname, entry.transferSize])"""


def load_site_module():
    spec = importlib.util.spec_from_file_location("vae_digits_site", WEB / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_page(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("document.body.dataset.status !== 'loading'", timeout=120_000)
    status = page.evaluate("document.body.dataset.status")
    if status != "ready":
        message = page.evaluate("document.getElementById('error-message').textContent")
        raise SystemExit(f"{url}: {message}")
    return page


def first_visit(browser, url: str, site: Path) -> tuple[float, float, int, int, int]:
    """In a fresh context: ms to the first digit, the same on a reload (cache warm), bytes transferred
    (headers included), and what the same files weigh uncompressed and as their gzip copies."""
    context = browser.new_context()
    try:
        page = open_page(context, url)
        first, fetched = page.evaluate("window.vaeDigits.timings.firstDigit"), page.evaluate(FETCHED)
        page.reload()
        page.wait_for_function("document.body.dataset.status === 'ready'", timeout=120_000)
        reload = page.evaluate("window.vaeDigits.timings.firstDigit")
    finally:
        context.close()
    files = [site / (path.lstrip("/") or "index.html") for path, _ in fetched]
    raw = sum(file.stat().st_size for file in files)
    gzipped = sum((gz if (gz := Path(f"{file}.gz")).is_file() else file).stat().st_size for file in files)
    return first, reload, sum(size for _, size in fetched), raw, gzipped


class Native:
    """The baseline: the bundle's ONNX decoder in one onnxruntime session on `threads` threads."""

    def __init__(self, bundle: str, threads: int):
        generator = Generator.load(bundle, backend="onnx")  # a directory or an embedded name
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        path = generator.bundle / generator.files["decoder"].path
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        self.feeds = {"z": rng.normal(size=(BATCH, generator.manifest.latent_dim)).astype(np.float32)}
        self.conditional = generator.manifest.conditional
        if self.conditional:
            self.feeds["label"] = np.eye(generator.manifest.num_classes, dtype=np.float32)[
                np.arange(BATCH) % 10
            ]

    def digits_per_second(self, seconds: float = 1.0) -> float:
        self.session.run(None, self.feeds)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            self.session.run(None, self.feeds)
            calls += 1
        return calls * BATCH / (time.perf_counter() - started)

    def one_digit_ms(self, calls: int = 200) -> list[float]:
        one = {name: array[:1] for name, array in self.feeds.items()}
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            self.session.run(None, one)
            times.append((time.perf_counter() - started) * 1000)
        return times


def measure_bundle(browser, base: str, site: Path, bundle: str, rounds: int, loads: int) -> dict:
    cores = os.cpu_count() or 1
    thread_counts = (1, cores)
    natives = {threads: Native(bundle, threads) for threads in thread_counts}
    native_speed: dict[int, list[float]] = {threads: [] for threads in thread_counts}
    native_one: dict[int, list[float]] = {threads: [] for threads in thread_counts}
    context = browser.new_context()
    pages = {
        threads: open_page(context, f"{base}?bundle={bundle}&threads={threads}") for threads in thread_counts
    }
    speed: dict[int, list[float]] = {threads: [] for threads in thread_counts}
    pad: dict[int, list[list[float]]] = {threads: [] for threads in thread_counts}
    for _ in range(rounds):
        for threads, page in pages.items():
            speed[threads].append(page.evaluate(THROUGHPUT, [BATCH, 1.0]))
            pad[threads].extend(page.evaluate(PAD_UPDATES, PAD_MOVES // rounds))
        for threads, native in natives.items():
            native_speed[threads].append(native.digits_per_second())
            native_one[threads].extend(native.one_digit_ms(PAD_MOVES // rounds))
    actual = {threads: page.evaluate("window.vaeDigits.threads()") for threads, page in pages.items()}
    context.close()
    visits = [first_visit(browser, f"{base}?bundle={bundle}", site) for _ in range(loads)]
    return {
        "bundle": bundle,
        "conditional": natives[1].conditional,
        "threads": {
            str(actual[threads]): {
                "digits_per_second_at_256": statistics.median(speed[threads]),
                "pad_update_ms_median": statistics.median(digit for digit, _ in pad[threads]),
                "pad_update_ms_p95": statistics.quantiles([digit for digit, _ in pad[threads]], n=20)[-1],
                "pad_update_with_strip_ms_median": statistics.median(both for _, both in pad[threads]),
            }
            for threads in thread_counts
        },
        "native": {
            str(threads): {
                "digits_per_second_at_256": statistics.median(native_speed[threads]),
                "one_digit_ms_median": statistics.median(native_one[threads]),
            }
            for threads in thread_counts
        },
        "first_digit_ms": statistics.median(v[0] for v in visits),
        "first_digit_ms_reload": statistics.median(v[1] for v in visits),
        "bytes_transferred": statistics.median(v[2] for v in visits),
        "bytes_uncompressed": statistics.median(v[3] for v in visits),
        "bytes_gzip": statistics.median(v[4] for v in visits),
    }


def tables(results: list[dict]) -> str:
    speed = [
        "| bundle | where | threads | digits/s, batch 256 | pad update: digit, median (p95) "
        "| + ten-label strip |",
        "|---|---|---|---|---|---|",
    ]
    start = [
        "| bundle | first digit (nothing cached) | reload | transferred (brotli) | uncompressed | gzip |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        name = result["bundle"]
        for threads, figures in result["threads"].items():
            speed.append(
                f"| {name} | Chromium | {threads} | {figures['digits_per_second_at_256']:,.0f} | "
                f"{figures['pad_update_ms_median']:.2f} ms ({figures['pad_update_ms_p95']:.2f}) | "
                f"{strip(result, figures)} |"
            )
        for threads, native in result["native"].items():
            speed.append(
                f"| {name} | Python onnxruntime (baseline) | {threads} | "
                f"{native['digits_per_second_at_256']:,.0f} | "
                f"{native['one_digit_ms_median']:.2f} ms (decode only) | |"
            )
        start.append(
            f"| {name} | {result['first_digit_ms'] / 1000:.2f} s | "
            f"{result['first_digit_ms_reload'] / 1000:.2f} s | {result['bytes_transferred'] / 1e6:.2f} MB | "
            f"{result['bytes_uncompressed'] / 1e6:.2f} MB | {result['bytes_gzip'] / 1e6:.2f} MB |"
        )
    return "\n".join(speed) + "\n\n" + "\n".join(start)


def strip(result: dict, figures: dict) -> str:
    return f"{figures['pad_update_with_strip_ms_median']:.2f} ms" if result["conditional"] else "-"


def met(reached: bool) -> str:
    return "met" if reached else "missed"


def goals(results: list[dict]) -> str:
    lines = []
    for result in results:
        worst_pad = max(f["pad_update_ms_p95"] for f in result["threads"].values())
        first, weight = result["first_digit_ms"], result["bytes_transferred"]
        lines.append(
            f"{result['bundle']}: pad update p95 {worst_pad:.2f} ms (goal < {PAD_GOAL_MS:g}: "
            f"{met(worst_pad < PAD_GOAL_MS)}); first digit {first / 1000:.2f} s "
            f"(goal < {FIRST_DIGIT_GOAL_MS / 1000:g} s: {met(first < FIRST_DIGIT_GOAL_MS)}); "
            f"first visit {weight / 1e6:.2f} MB (goal <= {FIRST_VISIT_GOAL_BYTES / 1e6:g} MB: "
            f"{met(weight <= FIRST_VISIT_GOAL_BYTES)})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", action="append", help="embedded name or bundle directory (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    bundles = args.bundle or ["cvae-16d", "cvae"]
    executable = next((path for path in CHROMIUM_PATHS if Path(path).is_file()), None)
    if executable is None:
        raise SystemExit("chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    site = load_site_module()
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        site_dir = Path(scratch) / "site"
        names = site.build(bundles, site_dir)
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            with site.serving(site_dir) as base:
                results = [
                    measure_bundle(browser, base, site_dir, name, args.rounds, args.loads) for name in names
                ]
            version = browser.version
        finally:
            browser.close()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{this_machine()}, Chromium {version} headless"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"Run of {when}, {machine}, load average {load} at the end\n\n{tables(results)}\n\n{goals(results)}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"when": when, "machine": machine, "load": load, "results": results}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
