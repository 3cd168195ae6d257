"""A `vae-serve` process on 127.0.0.1, as tests and benchmarks drive it: start it on a free port, wait for
/readyz, read /metrics, stop it with SIGTERM. Standard library only (the tests and bench/serve.py share it).


    server = ServeProcess(Path("serve.log"), "--bundle", "cvae", "--workers", "2")
    server.metric("vae_serve_requests_total", route="/readyz")   # summed over labels and workers
    server.stop()                                                 # SIGTERM; the exit code
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from vae_runtime.machine import free_port

SERVE = "import sys; sys.argv[0] = 'vae-serve'; from vae_runtime.cli.serve import run; run()"
SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ServeProcess:
    """`vae-serve --port PORT ARGS` in a subprocess (on the CPUs `cpus` names, via taskset, if given);
    its output goes to `log`. Ready when /readyz answers 200."""

    def __init__(self, log: Path, *args: str, cpus: str | None = None, ready_within: float = 180.0):
        self.log = log
        self.port = free_port()
        argv = [sys.executable, "-c", SERVE, "--port", str(self.port), *args]
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        with log.open("w") as sink:
            self.process = subprocess.Popen(argv, stdout=sink, stderr=sink)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + ready_within
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"vae-serve exited with {self.process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"vae-serve was not ready in {ready_within:g} s:\n{log.read_text()}")
            time.sleep(0.2)

    def get(self, path: str, timeout: float = 60) -> tuple[int, bytes]:
        """GET `path`: the status and the body (an error status is returned, not raised)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def _ready(self) -> bool:
        try:
            return self.get("/readyz", timeout=5)[0] == 200
        except OSError:  # not listening yet
            return False

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample on /metrics: (name, labels, value)."""
        found = []
        for line in self.get("/metrics")[1].decode().splitlines():
            matched = SAMPLE.match(line)
            if matched is not None:
                name, labels, value = matched.groups()
                found.append((name, dict(LABEL.findall(labels or "")), float(value)))
        return found

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
        return sum(
            value
            for sample, have, value in self.samples()
            if sample == name and all(have.get(key) == wanted for key, wanted in labels.items())
        )

    def workers(self) -> list[int]:
        """The worker processes' ids (`--workers N`); none when the server is a single process."""
        pid = self.process.pid
        children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        # multiprocessing's spawned processes, not its resource tracker
        return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]

    def cpu_seconds(self) -> float:
        """User and system CPU seconds of the server and its workers so far."""
        return sum(_cpu_seconds(pid) for pid in (self.process.pid, *self.workers()))

    def rss_mib(self) -> float:
        """Resident memory of the server and its workers."""
        return sum(_rss_mib(pid) for pid in (self.process.pid, *self.workers()))

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM (the server drains), then its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    if found is None:
        raise RuntimeError(f"no VmRSS in /proc/{pid}/status: has the process exited?")
    return int(found.group(1)) / 1024
