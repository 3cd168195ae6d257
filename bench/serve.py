"""Load-test vae-serve: a real server process and a bounded load generator in its own process, on 127.0.0.1.

    python bench/serve.py [--seconds 10] [--overload-seconds 30] [--soak-seconds 300] [--bundle NAME|DIR]

1. Clients 1, 16, 64, 256 (closed loop: each sends its next request when the last is answered), sending
   single-digit and, separately, 16-digit requests ("format": "npy"), to the server with batching and
   with --no-batching: requests/s, digits/s, p50/p99 latency, errors, the decoder calls' mean batch size
   (from /metrics), and the CPU share of the server and of the load generator (of both cores).
2. References in the same run: the in-process Generator at batch 256 (the compute ceiling) and a no-op
   endpoint on the same server stack (POST /v1/noop: the same body, parsed and checked, no model).
3. Overload: twice the saturating client count (the fewest whose 16-digit requests wait: p50 >= 4x
   that of one client) for --overload-seconds; clients honour Retry-After. Share answered 503, p99 of
   the accepted, other 5xx, server alive after. The servers run with --max-queue 1024 (four full batches).
4. Soak: --soak-seconds at about 70 % of the saturated 16-digit request rate (paced): server RSS at
   start and end.

Prints a Markdown table and writes JSON to bench/results/serve-<time>.json. A cell counts the requests
answered in its --seconds, after a warm-up second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from vae_runtime.machine import free_port, this_machine

CLIENTS = (1, 16, 64, 256)
WARMUP = 1.0
TICKS = os.sysconf("SC_CLK_TCK")
RESULTS = Path(__file__).parent / "results"
BATCH_METRICS = ("vae_serve_batch_rows_", "vae_serve_decode_seconds_")
QUEUE = ("--max-queue", "1024")  # four full batches may wait: 64 clients of 16 digits fit, overload gets 503s


# -- the load generator (its own process: `python bench/serve.py load ...`) --------------------------


async def _client(http, path: str, body: dict, stop: float, interval: float, records: list) -> None:
    import httpx

    seed = 0
    next_start = time.perf_counter()
    while (now := time.perf_counter()) < stop:
        if interval:
            await asyncio.sleep(max(0.0, next_start - now))
            next_start += interval
        seed += 1
        started = time.perf_counter()
        try:
            reply = await http.post(path, json={**body, "seed": seed})
            status, retry = reply.status_code, reply.headers.get("retry-after")
        except httpx.HTTPError:
            status, retry = 0, None
        records.append((started, time.perf_counter(), status))
        if retry is not None:  # a well-behaved client
            await asyncio.sleep(float(retry))


async def _load(url: str, path: str, body: dict, clients: int, seconds: float, rate: float) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    records: list[tuple[float, float, int]] = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        begin = time.perf_counter()
        cpu = time.process_time()
        stop = begin + WARMUP + seconds
        interval = clients / rate if rate else 0.0
        await asyncio.gather(*(_client(http, path, body, stop, interval, records) for _ in range(clients)))
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - begin
    counted = [(end - start, status) for start, end, status in records if begin + WARMUP <= end <= stop]
    ok = sorted(latency for latency, status in counted if status == 200)
    statuses: dict[str, int] = {}
    for _, status in counted:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests_per_s": len(ok) / seconds,
        "p50_ms": 1000 * ok[len(ok) // 2] if ok else None,
        "p99_ms": 1000 * ok[min(len(ok) - 1, int(0.99 * len(ok)))] if ok else None,
        "statuses": statuses,
        "loadgen_cpu_share": cpu / wall / (os.cpu_count() or 1),
    }


def load(url: str, path: str, body: dict, clients: int, seconds: float, rate: float = 0.0) -> dict:
    """Run the load generator in a process of its own; its results."""
    figures = (json.dumps(body), str(clients), str(seconds), str(rate))
    argv = [sys.executable, __file__, "load", url, path, *figures]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 120)
    return json.loads(done.stdout)


# -- the server ---------------------------------------------------------------------------------------


class Server:
    def __init__(self, bundle: str, *flags: str):
        import httpx

        code = "import sys; sys.argv[0] = 'vae-serve'; from vae_runtime.cli.serve import run; run()"
        port = str(free_port())
        argv = [
            sys.executable,
            "-c",
            code,
            "--port",
            port,
            "--bundle",
            bundle,
            "--bench-routes",
            *QUEUE,
            *flags,
        ]
        self.log = RESULTS / f"server-{os.getpid()}.log"
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(argv, stdout=sink, stderr=sink)
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 600
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{self.log.read_text()}")
            time.sleep(0.5)

    def _ready(self) -> bool:
        import httpx

        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        if found is None:
            raise RuntimeError(f"no VmRSS in /proc/{self.process.pid}/status: has the server exited?")
        return int(found.group(1)) / 1024

    def metrics(self) -> dict[str, float]:
        found = {}
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(BATCH_METRICS) and "bucket" not in line:
                name, value = line.rsplit(" ", 1)
                found[re.sub(r"\{.*\}", "", name)] = float(value)
        return found

    def alive(self) -> bool:
        return self.process.poll() is None and self.http.get("/healthz").status_code == 200

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self.log.unlink()
        return code


def measure(server: Server, path: str, body: dict, clients: int, seconds: float, rate: float = 0.0) -> dict:
    """One cell: the load generator's figures plus the server's CPU share and batch sizes."""
    before_cpu, before = server.cpu_seconds(), server.metrics()
    result = load(server.url, path, body, clients, seconds, rate)
    after = server.metrics()
    cpus = os.cpu_count() or 1
    result["server_cpu_share"] = (server.cpu_seconds() - before_cpu) / (seconds + WARMUP) / cpus
    calls = after.get("vae_serve_batch_rows_count", 0) - before.get("vae_serve_batch_rows_count", 0)
    rows = after.get("vae_serve_batch_rows_sum", 0) - before.get("vae_serve_batch_rows_sum", 0)
    decoding = after.get("vae_serve_decode_seconds_sum", 0) - before.get("vae_serve_decode_seconds_sum", 0)
    result["mean_batch_rows"] = rows / calls if calls else None
    result["decoder_busy_share"] = decoding / (seconds + WARMUP)  # wall time inside decoder calls
    result["digits_per_s"] = result["requests_per_s"] * body.get("count", 1)
    result["errors"] = sum(n for status, n in result["statuses"].items() if status != "200")
    print(f"  {path} count={body.get('count', 1)} clients={clients}: {_cell(result)}", flush=True)
    return result


def _cell(result: dict) -> str:
    return (
        f"{result['requests_per_s']:.0f} req/s, {result['digits_per_s']:.0f} digits/s, "
        f"p50 {_ms(result['p50_ms'])}, p99 {_ms(result['p99_ms'])}, errors {result['errors']}"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def in_process_reference(bundle: str, seconds: float) -> float:
    """The Generator's digits/s at batch 256, in this process: the compute ceiling."""
    from vae_runtime import Generator

    g = Generator.load(bundle)
    label = 7 if g.info.conditional else None
    g.generate(label, count=256, seed=0)
    made, started, seed = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        made += len(g.generate(label, count=256, seed=seed))
        seed += 1
    return made / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> dict:
    from vae_runtime import Generator

    label = [7] if Generator.load(args.bundle).info.conditional else None
    single = {"labels": label, "count": 1, "format": "npy"}
    sixteen = {**single, "count": 16}
    results: dict = {"cells": {}}
    print(f"in-process Generator, batch 256, {args.seconds:g} s", flush=True)
    results["in_process_digits_per_s"] = in_process_reference(args.bundle, args.seconds)
    for mode, flags in (("batching", ()), ("no-batching", ("--no-batching",))):
        print(f"server: {mode}", flush=True)
        server = Server(args.bundle, *flags)
        for name, body in (("single", single), ("sixteen", sixteen)):
            for clients in CLIENTS:
                cell = measure(server, "/v1/generate", body, clients, args.seconds)
                results["cells"][f"{mode}/{name}/{clients}"] = cell
        if mode == "batching":
            for clients in CLIENTS:
                results["cells"][f"noop/single/{clients}"] = measure(
                    server, "/v1/noop", single, clients, args.seconds
                )
            results["overload"], results["soak"] = stress(server, results["cells"], sixteen, args)
        results[f"{mode}_exit_code"] = server.stop()
    return results


def _saturating(cells: dict) -> int:
    """The fewest 16-digit clients whose requests mostly wait: p50 at least 4x that of one client."""
    alone = cells["batching/sixteen/1"]["p50_ms"] or 0.0
    waiting = [n for n in CLIENTS if (cells[f"batching/sixteen/{n}"]["p50_ms"] or 0.0) >= 4 * alone]
    return waiting[0] if waiting else CLIENTS[-1]


def stress(server: Server, cells: dict, body: dict, args: argparse.Namespace) -> tuple[dict, dict]:
    saturating = _saturating(cells)
    clients = 2 * saturating
    print(f"overload: {clients} clients (2 x {saturating}), {args.overload_seconds:g} s", flush=True)
    overload = measure(server, "/v1/generate", body, clients, args.overload_seconds)
    answered = sum(overload["statuses"].values())
    overload.update(
        clients=clients,
        share_503=overload["statuses"].get("503", 0) / answered if answered else 0.0,
        other_errors=sum(n for s, n in overload["statuses"].items() if s not in ("200", "503")),
        alive_after=server.alive(),
    )
    rate = 0.7 * cells[f"batching/sixteen/{saturating}"]["requests_per_s"]
    print(f"soak: {rate:.0f} requests/s of 16 digits, {args.soak_seconds:g} s", flush=True)
    rss_start = server.rss_mib()
    soak = measure(server, "/v1/generate", body, 64, args.soak_seconds, rate=rate)
    soak.update(target_rate=rate, rss_start_mib=rss_start, rss_end_mib=server.rss_mib())
    return overload, soak


# -- the report ---------------------------------------------------------------------------------------


def table(results: dict) -> str:
    cells = results["cells"]
    lines = [
        "| workload | clients | batching: req/s | digits/s | p50 | p99 | batch rows | errors "
        "| no-batching: req/s | digits/s | p50 | p99 | errors | server CPU | CPU ms/req | load-gen CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, what in (("single", "1 digit"), ("sixteen", "16 digits")):
        for clients in CLIENTS:
            on, off = cells[f"batching/{name}/{clients}"], cells[f"no-batching/{name}/{clients}"]
            batch = f"{on['mean_batch_rows']:.1f}" if on["mean_batch_rows"] else "-"
            lines.append(
                f"| {what} | {clients} | {on['requests_per_s']:.0f} | {on['digits_per_s']:.0f} "
                f"| {_ms(on['p50_ms'])} | {_ms(on['p99_ms'])} | {batch} | {on['errors']} "
                f"| {off['requests_per_s']:.0f} | {off['digits_per_s']:.0f} | {_ms(off['p50_ms'])} "
                f"| {_ms(off['p99_ms'])} | {off['errors']} | {_cpu(on)} | {on['loadgen_cpu_share']:.0%} |"
            )
    for clients in CLIENTS:
        noop = cells[f"noop/single/{clients}"]
        lines.append(
            f"| no-op endpoint | {clients} | {noop['requests_per_s']:.0f} | - | {_ms(noop['p50_ms'])} "
            f"| {_ms(noop['p99_ms'])} | - | {noop['errors']} | | | | | | {_cpu(noop)} "
            f"| {noop['loadgen_cpu_share']:.0%} |"
        )
    lines.append(
        f"| in-process Generator, batch 256 | - | - | {results['in_process_digits_per_s']:.0f} "
        "| | | 256 | | | | | | | | | |"
    )
    over, soak = results["overload"], results["soak"]
    lines += [
        "",
        f"Overload, {over['clients']} clients of 16 digits: {over['share_503']:.0%} answered 503, "
        f"accepted p99 {_ms(over['p99_ms'])}, other errors {over['other_errors']}, "
        f"server alive after: {over['alive_after']}.",
        f"Soak, {soak['target_rate']:.0f} requests/s of 16 digits for {results['args']['soak_seconds']:g} s: "
        f"RSS {soak['rss_start_mib']:.0f} -> {soak['rss_end_mib']:.0f} MiB, p99 {_ms(soak['p99_ms'])}, "
        f"errors {soak['errors']}.",
    ]
    return "\n".join(lines)


def _cpu(cell: dict) -> str:
    """The server's CPU share of both cores, and its CPU milliseconds per answered request (approximate:
    the CPU time includes the warm-up second)."""
    cpus = os.cpu_count() or 1
    per_request = (
        cell["server_cpu_share"] * cpus * 1000 / cell["requests_per_s"] if cell["requests_per_s"] else 0
    )
    return f"{cell['server_cpu_share']:.0%} | {per_request:.1f}"


def goals(results: dict) -> list[tuple[str, bool, str]]:
    cells = results["cells"]
    single, noop = cells["batching/single/64"], cells["noop/single/64"]
    sixteen, baseline = cells["batching/sixteen/64"], cells["no-batching/sixteen/64"]
    over, soak = results["overload"], results["soak"]
    growth = soak["rss_end_mib"] / soak["rss_start_mib"] - 1
    errors = sum(cell["errors"] for key, cell in cells.items() if key.endswith("/64"))
    return [
        (
            "64 clients, 1 digit: >= 70 % of the no-op endpoint's req/s",
            single["requests_per_s"] >= 0.7 * noop["requests_per_s"],
            f"{single['requests_per_s'] / noop['requests_per_s']:.0%}",
        ),
        ("64 clients, 1 digit: p99 <= 50 ms", (single["p99_ms"] or 1e9) <= 50, _ms(single["p99_ms"])),
        (
            "64 clients, 16 digits: >= 50 % of the in-process batch-256 digits/s",
            sixteen["digits_per_s"] >= 0.5 * results["in_process_digits_per_s"],
            f"{sixteen['digits_per_s'] / results['in_process_digits_per_s']:.0%}",
        ),
        (
            "64 clients, 16 digits: batching >= 1.3x --no-batching",
            sixteen["digits_per_s"] > 0 and sixteen["digits_per_s"] >= 1.3 * baseline["digits_per_s"],
            f"{sixteen['digits_per_s'] / max(baseline['digits_per_s'], 1e-9):.2f}x",
        ),
        ("64 clients: no errors", errors == 0, f"{errors} errors"),
        (
            "overload: only 503s refused, accepted p99 <= 250 ms",
            over["other_errors"] == 0 and over["alive_after"] and (over["p99_ms"] or 1e9) <= 250,
            f"other errors {over['other_errors']}, p99 {_ms(over['p99_ms'])}",
        ),
        ("soak: memory grows < 5 %", growth < 0.05, f"{growth:+.1%}"),
    ]


def report(results: dict) -> None:
    load = results["load_average_end"][0]
    print(f"\nRun of {results['when']}, {results['machine']}, load average {load:.1f} at the end\n")
    print(table(results))
    print("\n| goal | met | measured |\n|---|---|---|")
    for goal, met, measured in results["goals"]:
        print(f"| {goal} | {'yes' if met else 'no'} | {measured} |")


def main() -> None:
    if sys.argv[1:2] == ["load"]:
        url, path, body, clients, seconds, rate = sys.argv[2:8]
        result = asyncio.run(_load(url, path, json.loads(body), int(clients), float(seconds), float(rate)))
        print(json.dumps(result))
        return
    if sys.argv[1:2] == ["--report"]:  # the table of an earlier run
        report(json.loads(Path(sys.argv[2]).read_text()))
        return
    from vae_runtime import embedded_bundle

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="counted seconds per cell")
    parser.add_argument("--overload-seconds", type=float, default=30.0)
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    parser.add_argument("--bundle", default=str(embedded_bundle()), help="default: the runtime's default")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    started = time.time()
    results = run(args)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results.update(
        args=vars(args),
        when=when,
        minutes=(time.time() - started) / 60,
        machine=f"{this_machine()}, Python {platform.python_version()}",
        load_average_end=os.getloadavg(),
    )
    results["goals"] = goals(results)
    out = RESULTS / f"serve-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
