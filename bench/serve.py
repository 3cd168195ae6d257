"""Load-test vae-serve with wrk, a C load generator, on 127.0.0.1: the server's ratios in one run.

    python bench/serve.py [--seconds 8] [--bundle NAME|DIR] [--noisy]
    python bench/serve.py --report bench/results/serve-<time>.json     # the tables of an earlier run

Needs `wrk` (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk) and `taskset` (util-linux).
wrk runs on the last core and every server on the others (taskset), so that the load generator neither
steals the server's CPU nor is starved by it. Refuses to start when the 1-minute load average is above
1.0 (a shared machine measures the neighbours), unless --noisy; every table says the load.

1. In this process, on the server's cores: the bare decoder session for one digit, the Generator's
   `generate(label, count=1)`, and `generate(count=256)` in digits/s (the compute ceiling).
2. Closed loop (each connection sends its next request when the last is answered): single digits at
   1, 16 and 64 connections, 16 digits at 64, and the no-op route (POST /v1/noop, --bench-routes: the
   same stack and body check, no model), against `vae-serve` and `vae-serve --no-batching`.
3. Paced: 64 connections at 50 % and 80 % of the measured single-digit capacity (wrk's Lua delay(),
   randomized around the interval), so that latency is measured below saturation too.
4. Big answers: 2 connections fetching 1,024-digit JSON answers while 2 others send single digits.
5. Overload: 256 connections of 16 digits (503 + Retry-After is the expected refusal).
6. `--workers 2` against 1 worker, with the server on every core (wrk shares one).

Each cell runs `--seconds` after a warm-up second; "format" is "npy" unless said. Writes JSON to
bench/results/serve-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vae_runtime.machine import this_machine
from vae_runtime.serve.process import ServeProcess

RESULTS = Path(__file__).parent / "results"
MAX_LOAD = 1.0
WARMUP_SECONDS = 1
PACED_SHARES = (0.5, 0.8)
SINGLE_CONNECTIONS = (1, 16, 64)
Cell = dict[str, Any]

# wrk's Lua: the request, an optional randomized delay before each one (paced cells), and the summary
# as one JSON line (wrk reports latency in microseconds)
LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
local interval = {interval_ms}
{delay}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {{"requests":%d,"seconds":%f,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration / 1e6, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""
DELAY = "function delay() return interval * (0.5 + math.random()) end"


# -- the load generator ------------------------------------------------------------------------------


class Wrk:
    """wrk on its own core (the last one, when there are two or more); the server gets the others."""

    def __init__(self) -> None:
        if shutil.which("wrk") is None:
            raise SystemExit("bench/serve.py: error: wrk is not installed (apt-get install wrk)")
        cores = os.cpu_count() or 1
        self.pinned = cores >= 2 and shutil.which("taskset") is not None
        self.core = str(cores - 1)
        self.server_cores = f"0-{cores - 2}" if self.pinned else None

    def start(self, url: str, body: dict[str, Any], connections: int, seconds: float, rate: float = 0.0):
        """A running wrk process; `rate` > 0 paces it to about that many requests/s."""
        interval_ms = 1000 * connections / rate if rate else 0
        script = LUA.format(
            body=json.dumps(body), interval_ms=f"{interval_ms:.3f}", delay=DELAY if rate else ""
        )
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
            file.write(script)
        argv = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            file.name,
            url,
        ]
        if self.pinned:
            argv = ["taskset", "-c", self.core, *argv]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        process.script = file.name  # type: ignore[attr-defined]
        return process

    @staticmethod
    def result(process: subprocess.Popen[str]) -> Cell:
        out, err = process.communicate(timeout=600)
        Path(process.script).unlink()  # type: ignore[attr-defined]
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if process.returncode != 0 or not lines:
            raise SystemExit(f"bench/serve.py: error: wrk failed: {err.strip() or out.strip()}")
        raw = json.loads(lines[-1].removeprefix("RESULT "))
        errors = sum(raw[kind] for kind in ("connect", "read", "write", "timeout"))
        ok = raw["requests"] - raw["status"]
        return {
            "requests_per_s": ok / raw["seconds"],
            "p50_ms": raw["p50_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            "max_ms": raw["max_us"] / 1000,
            "non_2xx": raw["status"],
            "socket_errors": errors,
        }

    def run(
        self,
        url: str,
        body: dict[str, Any],
        connections: int,
        seconds: float,
        rate: float = 0.0,
        settle: Callable[[], None] = lambda: None,
    ) -> Cell:
        """A warm-up second, then the measured cell; `settle` waits for the server between them."""
        settle()
        self.result(self.start(url, body, connections, WARMUP_SECONDS, rate))
        settle()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cell = self.result(self.start(url, body, connections, seconds, rate))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        cell["wrk_core_share"] = cpu / seconds
        return cell


# -- the cells ------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.wrk = Wrk()
        self.cells: dict[str, Cell] = {}
        label = [7] if _conditional(args.bundle) else None
        self.single = {"labels": label, "count": 1, "format": "npy"}
        self.sixteen = {**self.single, "count": 16}
        self.big_json = {"labels": label, "count": 1024, "format": "json"}

    def server(self, *flags: str, cores: str | None = None) -> ServeProcess:
        log = RESULTS / f"server-{os.getpid()}.log"
        return ServeProcess(log, "--bundle", self.args.bundle, "--bench-routes", *flags, cpus=cores)

    def measure(
        self,
        name: str,
        server: ServeProcess,
        path: str,
        body: dict[str, Any],
        connections: int,
        rate: float = 0.0,
    ) -> Cell:
        """One cell: wrk's figures plus the server's CPU and its decoder calls (from /metrics)."""
        seconds = self.args.seconds
        _settle(server)
        before_cpu, calls, rows = server.cpu_seconds(), *self._batches(server)
        cell = self.wrk.run(server.url + path, body, connections, seconds, rate, lambda: _settle(server))
        after_calls, after_rows = self._batches(server)
        # the server's CPU includes the warm-up second
        cell["server_cpu_ms_per_request"] = (
            1000 * (server.cpu_seconds() - before_cpu) / (cell["requests_per_s"] * (seconds + WARMUP_SECONDS))
            if cell["requests_per_s"]
            else None
        )
        cell["mean_batch_rows"] = (after_rows - rows) / (after_calls - calls) if after_calls > calls else None
        cell.update(path=path, connections=connections, digits=body.get("count", 1), rate=rate)
        cell["digits_per_s"] = cell["requests_per_s"] * cell["digits"] if path != "/v1/noop" else None
        self.cells[name] = cell
        print(f"  {name}: {_summary(cell)}", flush=True)
        return cell

    @staticmethod
    def _batches(server: ServeProcess) -> tuple[float, float]:
        return server.metric("vae_serve_batch_rows_count"), server.metric("vae_serve_batch_rows_sum")

    def closed_and_paced(self, mode: str, flags: tuple[str, ...]) -> dict[str, float]:
        print(f"server: {mode}", flush=True)
        server = self.server(*flags, cores=self.wrk.server_cores)
        rss_start = server.rss_mib()
        for connections in SINGLE_CONNECTIONS:
            self.measure(f"{mode}/1 digit/{connections}", server, "/v1/generate", self.single, connections)
        self.measure(f"{mode}/16 digits/64", server, "/v1/generate", self.sixteen, 64)
        if mode == "batching":
            self.measure("batching/no-op/64", server, "/v1/noop", self.single, 64)
            capacity = self.cells["batching/1 digit/64"]["requests_per_s"]
            for share in PACED_SHARES:
                name = f"batching/1 digit/64 paced {share:.0%}"
                self.measure(name, server, "/v1/generate", self.single, 64, rate=share * capacity)
            self.big_answers(server)
            self.measure("batching/overload 16 digits/256", server, "/v1/generate", self.sixteen, 256)
        memory = {"rss_start_mib": rss_start, "rss_end_mib": server.rss_mib(), "exit_code": server.stop()}
        print(
            f"  {mode}: RSS {memory['rss_start_mib']:.0f} -> {memory['rss_end_mib']:.0f} MiB, "
            f"exit code {memory['exit_code']}",
            flush=True,
        )
        return memory

    def big_answers(self, server: ServeProcess) -> None:
        """Small requests while two clients fetch 1,024-digit JSON answers, both wrk on wrk's core."""
        seconds = self.args.seconds
        _settle(server)
        big = self.wrk.start(server.url + "/v1/generate", self.big_json, 2, seconds + 2 * WARMUP_SECONDS)
        time.sleep(WARMUP_SECONDS)
        small = self.wrk.result(self.wrk.start(server.url + "/v1/generate", self.single, 2, seconds))
        big_cell = self.wrk.result(big)
        small.update(
            path="/v1/generate", connections=2, digits=1, rate=0.0, big_json_per_s=big_cell["requests_per_s"]
        )
        small["digits_per_s"] = small["requests_per_s"]
        self.cells["batching/1 digit/2 beside 2 x 1024-digit JSON"] = small
        print(
            f"  beside big JSON answers ({big_cell['requests_per_s']:.1f}/s): {_summary(small)}", flush=True
        )

    def workers(self) -> None:
        """1 and 2 worker processes on every core (wrk shares one of them)."""
        for workers in (1, 2):
            print(f"server: {workers} worker(s), every core", flush=True)
            server = self.server("--workers", str(workers))
            mode = f"every core, {workers} worker{'s' if workers > 1 else ''}"
            self.measure(f"{mode}/1 digit/64", server, "/v1/generate", self.single, 64)
            self.measure(f"{mode}/16 digits/64", server, "/v1/generate", self.sixteen, 64)
            self.measure(f"{mode}/no-op/64", server, "/v1/noop", self.single, 64)
            server.stop()


def _settle(server: ServeProcess) -> None:
    """Until the requests that the last wrk run left behind (wrk closes its connections, the server
    still answers what it read) are answered: no cell starts with another's queue."""
    deadline = time.monotonic() + 60
    while server.metric("vae_serve_queue_rows") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the decoder call under way


def in_process(bundle: str, cores: str | None, seconds: float) -> dict[str, float]:
    """The Generator in this process, on the server's cores: per-call times for one digit, and digits/s
    at batch 256 (there and on every core)."""
    import numpy as np

    from vae_runtime import Generator

    if cores is not None:
        first, last = (int(core) for core in cores.split("-"))
        os.sched_setaffinity(0, range(first, last + 1))
    g = Generator.load(bundle)
    label = 7 if g.manifest.conditional else None
    feeds = g.sample(label, count=1, seed=0).feeds(g.manifest.num_classes)
    timings = {
        "bare_decoder_ms": lambda i: g.decoder.run(feeds),
        "generate_1_ms": lambda i: g.generate(label, seed=i),
    }
    best = {name: np.inf for name in timings}
    for _ in range(5):  # interleaved rounds: both see the same machine
        for name, call in timings.items():
            started = time.perf_counter()
            for i in range(300):
                call(i)
            best[name] = min(best[name], (time.perf_counter() - started) / 300 * 1000)
    best["batch_256_digits_per_s"] = _digits_per_s(g, label, seconds)
    # the server's shared calls stay on onnxruntime (exactly the digits generate gives each request)
    best["batch_256_onnx_digits_per_s"] = _digits_per_s(
        Generator.load(bundle, backend="onnx"), label, seconds
    )
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    best["batch_256_every_core_digits_per_s"] = _digits_per_s(g, label, seconds)
    return best


def _digits_per_s(g: Any, label: int | None, seconds: float) -> float:
    g.generate(label, count=256, seed=0)
    made, started, seed = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        made += len(g.generate(label, count=256, seed=seed))
        seed += 1
    return made / (time.perf_counter() - started)


def _conditional(bundle: str) -> bool:
    from vae_runtime import Generator

    return Generator.load(bundle).manifest.conditional


# -- the report ---------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.2f} ms"


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _summary(cell: Cell) -> str:
    return (
        f"{cell['requests_per_s']:,.0f} req/s, p50 {_ms(cell['p50_ms'])}, p99 {_ms(cell['p99_ms'])}, "
        f"non-2xx {cell['non_2xx']}, socket errors {cell['socket_errors']}"
    )


def table(results: dict[str, Any]) -> str:
    lines = [
        "| server | workload | connections | req/s | digits/s | p50 | p99 | batch rows | server CPU ms/req "
        "| non-2xx | wrk core |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cell in results["cells"].items():
        server, workload, _ = name.split("/", 2)
        if cell.get("rate"):
            workload += f", paced at {cell['rate']:,.0f} req/s"
        if "big_json_per_s" in cell:
            workload += f" beside 2 clients of 1,024-digit JSON ({cell['big_json_per_s']:.1f} answers/s)"
        lines.append(
            f"| {server} | {workload} | {cell['connections']} | {_number(cell['requests_per_s'])} "
            f"| {_number(cell['digits_per_s'])} | {_ms(cell['p50_ms'])} | {_ms(cell['p99_ms'])} "
            f"| {_number(cell.get('mean_batch_rows'), 1)} "
            f"| {_number(cell.get('server_cpu_ms_per_request'), 2)} "
            f"| {cell['non_2xx']} | {_share(cell.get('wrk_core_share'))} |"
        )
    ref = results["in_process"]
    lines += [
        "",
        f"In-process, on the server's cores: bare decoder session {ref['bare_decoder_ms']:.3f} ms, "
        f"`generate(label, count=1)` {ref['generate_1_ms']:.3f} ms, `generate(count=256)` "
        f"{ref['batch_256_digits_per_s']:,.0f} digits/s (on every core: "
        f"{ref['batch_256_every_core_digits_per_s']:,.0f}; onnxruntime alone, as the server's shared calls: "
        f"{ref['batch_256_onnx_digits_per_s']:,.0f}).",
    ]
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def goals(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    cells, ref = results["cells"], results["in_process"]
    alone, alone_off = cells["batching/1 digit/1"], cells["no-batching/1 digit/1"]
    busy, busy_off = cells["batching/1 digit/64"], cells["no-batching/1 digit/64"]
    noop, sixteen = cells["batching/no-op/64"], cells["batching/16 digits/64"]
    beside = cells["batching/1 digit/2 beside 2 x 1024-digit JSON"]
    every = {kind: cells[f"every core, 1 worker/{kind}/64"] for kind in ("1 digit", "16 digits", "no-op")}
    overhead = ref["generate_1_ms"] / ref["bare_decoder_ms"]
    every_single = every["1 digit"]["requests_per_s"] / every["no-op"]["requests_per_s"]
    every_sixteen = every["16 digits"]["digits_per_s"] / ref["batch_256_every_core_digits_per_s"]
    return [
        (
            "1 connection: batching's p50 <= 1.2x --no-batching's",
            alone["p50_ms"] <= 1.2 * alone_off["p50_ms"],
            f"{alone['p50_ms'] / alone_off['p50_ms']:.2f}x "
            f"({_ms(alone['p50_ms'])} vs {_ms(alone_off['p50_ms'])})",
        ),
        (
            "64 connections: batching >= 1.5x --no-batching req/s",
            busy["requests_per_s"] >= 1.5 * busy_off["requests_per_s"],
            f"{busy['requests_per_s'] / busy_off['requests_per_s']:.2f}x",
        ),
        (
            "single digits at 64: >= 60 % of the no-op route's req/s",
            busy["requests_per_s"] >= 0.6 * noop["requests_per_s"],
            f"{busy['requests_per_s'] / noop['requests_per_s']:.0%} "
            f"(server on every core: {every_single:.0%})",
        ),
        (
            "16 digits at 64: >= 85 % of the in-process batch-256 digits/s",
            sixteen["digits_per_s"] >= 0.85 * ref["batch_256_digits_per_s"],
            f"{sixteen['digits_per_s'] / ref['batch_256_digits_per_s']:.0%} "
            f"(every core: {every_sixteen:.0%})",
        ),
        (
            "in-process generate(label, count=1) <= 1.25x the bare decoder session",
            overhead <= 1.25,
            f"{overhead:.2f}x",
        ),
        (
            "small requests beside big JSON answers: p99 <= 50 ms",
            beside["p99_ms"] <= 50,
            _ms(beside["p99_ms"]),
        ),
    ]


def report(results: dict[str, Any]) -> None:
    start, end = results["load_average_start"][0], results["load_average_end"][0]
    print(
        f"\nRun of {results['when']} ({results['minutes']:.1f} min), {results['machine']}, "
        f"load average {start:.2f} before the run ({end:.2f} at its end, its own processes included); "
        f"{results['layout']}\n"
    )
    print(table(results))
    print("\n| goal | met | measured |\n|---|---|---|")
    for goal, met, measured in goals(results):
        print(f"| {goal} | {'yes' if met else 'no'} | {measured} |")


def main() -> None:
    if sys.argv[1:2] == ["--report"]:
        report(json.loads(Path(sys.argv[2]).read_text()))
        return
    from vae_runtime import embedded_bundle

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--seconds", type=int, default=8, help="measured seconds per cell (whole)")
    parser.add_argument("--bundle", default=str(embedded_bundle()), help="default: the runtime's default")
    parser.add_argument("--noisy", action="store_true", help=f"run even above load {MAX_LOAD}")
    args = parser.parse_args()
    load = os.getloadavg()
    if load[0] > MAX_LOAD and not args.noisy:
        raise SystemExit(
            f"bench/serve.py: error: the load average is {load[0]:.2f} (above {MAX_LOAD}): "
            "the machine is busy; wait, or pass --noisy and say so"
        )
    RESULTS.mkdir(exist_ok=True)
    started = time.time()
    bench = Bench(args)
    print("in-process references", flush=True)
    results: dict[str, Any] = {"in_process": in_process(args.bundle, bench.wrk.server_cores, args.seconds)}
    results["memory"] = {
        "batching": bench.closed_and_paced("batching", ()),
        "no-batching": bench.closed_and_paced("no-batching", ("--no-batching",)),
    }
    bench.workers()
    results.update(
        cells=bench.cells,
        args=vars(args),
        when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        minutes=(time.time() - started) / 60,
        machine=f"{this_machine()}, Python {platform.python_version()}",
        layout=(
            f"wrk (1 thread) on core {bench.wrk.core}, the servers on cores {bench.wrk.server_cores} "
            "(the workers rows: on every core)"
            if bench.wrk.pinned
            else "nothing pinned (one core)"
        ),
        load_average_start=load,
        load_average_end=os.getloadavg(),
    )
    out = RESULTS / f"serve-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
