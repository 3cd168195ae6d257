"""This machine: one description of it for every measurement the project records (export speeds,
vae-bench, the benchmark scripts), and a free loopback port for the servers the tests and benchmarks start."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path


def this_machine() -> str:
    """The machine, e.g. "x86_64 Linux, 2 cores, Intel(R) Xeon(R) CPU @ 2.20GHz": what a speed was
    measured on."""
    cores = os.cpu_count() or 1
    return f"{platform.machine()} {platform.system()}, {cores} core{'s' * (cores > 1)}, {_processor()}"


def _processor() -> str:
    """The processor's model name: /proc/cpuinfo's "model name" (x86) or "Model" (ARM boards)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    found = dict(line.split(":", 1) for line in lines if ":" in line)
    values = {key.strip(): value.strip() for key, value in found.items()}
    return values.get("model name") or values.get("Model") or platform.processor() or "processor unknown"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server a test or benchmark starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
