"""The footprint of one install of the runtime: its site-packages and its cold start, in a fresh venv.

    python bench/footprint.py REQUIREMENT... [--system-site-packages] [--repeats 5]
        [--machine aarch64 [--python 3.12]]

e.g. `python bench/footprint.py "dist/vae_digits-0.2.0-py3-none-any.whl[tflite]"`, or in the armhf root
of scripts/check_arm.sh `python3 bench/footprint.py --system-site-packages vae_digits-0.2.0-...whl`.
Prints one JSON object: the machine; the MB of the venv's site-packages as `du` counts them, with the .pyc
files pip writes, less pip and setuptools (which every venv has), and the largest packages; in a
--system-site-packages venv also the MB of the system's numpy and PIL that the runtime imports; and the
median wall time of fresh `vae-generate --label 7 --count 16 --out x.png` processes (cold start to the
PNG). With --machine, the install is another machine's (pip's wheels for that Linux machine and this or
--python's Python, in a directory instead of a venv): its size alone, since nothing there can run here.
pip evaluates environment markers for the machine it runs on, not the target: so a wheel is installed
without its dependencies, and those whose markers hold on the target machine and Python are passed to pip
by name (their own dependencies are pip's choice for this machine, the same for the pure-Python ones).
The numbers of docs/edge.md and docs/performance.md come from it.
"""

from __future__ import annotations

import argparse
import email.parser
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

EVERY_VENV = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth")
SYSTEM_PACKAGES = ("numpy", "PIL")
COLD_START_ARGS = ("--label", "7", "--count", "16", "--force", "--out")  # then the PNG's path


def megabytes(*paths: Path) -> float:
    """Disk usage as `du` counts it (blocks, not file lengths)."""
    output = subprocess.run(
        ["du", "-sk", *map(str, paths)], capture_output=True, text=True, check=True
    ).stdout
    return round(sum(int(line.split()[0]) for line in output.splitlines()) / 1024, 1)


WHEEL = re.compile(r"(?P<path>.+\.whl)(?:\[(?P<extras>[\w,-]+)\])?$")


def other_machine(requirements: list[str], machine: str, python: str) -> dict[str, object]:
    """The size of an install for another Linux machine, from pip's wheels for it (manylinux tags)."""
    tags = [
        f"manylinux{version}_{machine}" for version in ("2014", *(f"_2_{minor}" for minor in range(17, 40)))
    ]
    platforms = [option for tag in tags for option in ("--platform", tag)]
    matches = [WHEEL.match(requirement) for requirement in requirements]
    wheels = [match for match in matches if match]
    others = [requirement for requirement, match in zip(requirements, matches, strict=True) if not match]
    others += [dependency for wheel in wheels for dependency in wheel_dependencies(wheel, machine, python)]
    with tempfile.TemporaryDirectory() as scratch:
        targets: list[Path] = []  # one directory a pip call: a second call into the first would skip its bin/
        for options, named in ((["--no-deps"], [wheel["path"] for wheel in wheels]), ([], others)):
            if named:
                targets.append(Path(scratch) / f"site-packages-{len(targets)}")
                subprocess.run(
                    [sys.executable, "-m", "pip", "install", "-q", "--target", str(targets[-1]), *platforms,
                     "--python-version", python, "--only-binary=:all:", *options, *named],
                    check=True,
                )  # fmt: skip
        return {"install": " ".join(requirements), "machine": machine, "python": python, **_sizes(*targets)}


def wheel_dependencies(wheel: re.Match[str], machine: str, python: str) -> list[str]:
    """The dependencies of a wheel (with its extras) whose markers hold on Linux `machine` with `python`."""
    with zipfile.ZipFile(wheel["path"]) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    extras = ["", *(wheel["extras"] or "").split(",")]
    environment = {"platform_machine": machine, "sys_platform": "linux", "python_version": python}
    chosen = []
    for requirement in map(Requirement, metadata.get_all("Requires-Dist") or []):
        marker, requirement.marker = requirement.marker, None
        if marker is None or any(marker.evaluate({**environment, "extra": extra}) for extra in extras):
            chosen.append(str(requirement))
    return chosen


def _sizes(*directories: Path) -> dict[str, object]:
    """MB of what an install put in `directories`, less what every venv has, and its largest packages."""
    found = [path for where in directories for path in where.iterdir()]
    counted = [path for path in found if not path.name.startswith(EVERY_VENV)]
    sizes: dict[str, float] = {}
    for path in counted:
        sizes[path.name] = sizes.get(path.name, 0) + megabytes(path)
    return {
        "site_packages_mb": megabytes(*counted),
        "largest_mb": dict(sorted(sizes.items(), key=lambda item: -item[1])[:8]),
    }


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def footprint(requirements: list[str], system: bool, repeats: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch:
        venv = Path(scratch) / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", *(["--system-site-packages"] * system), str(venv)], check=True
        )
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *requirements], check=True)
        packages = site_packages(venv)
        report = {"install": " ".join(requirements), "machine": platform.machine(), **_sizes(packages)}
        if system:
            report["system_mb"] = _system_packages(venv, packages)
        report["cold_start_s"] = _cold_start(venv, Path(scratch) / "x.png", repeats)
    return report


def _system_packages(venv: Path, packages: Path) -> dict[str, float]:
    """MB of the system's numpy and PIL, where the venv imports them from outside its own site-packages."""
    found = {}
    for name in SYSTEM_PACKAGES:
        code = f"import {name}; print({name}.__path__[0])"
        result = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
        path = Path(result.stdout.strip())
        if result.returncode == 0 and packages not in path.parents:
            found[name] = megabytes(path)
    return found


def _cold_start(venv: Path, out: Path, repeats: int) -> float:
    command = [str(venv / "bin" / "vae-generate"), *COLD_START_ARGS, str(out)]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="+", help="what to pip install, e.g. a wheel with an extra")
    parser.add_argument("--system-site-packages", action="store_true", help="a venv that sees the system's")
    parser.add_argument("--repeats", type=int, default=5, help="cold starts to take the median of")
    parser.add_argument("--machine", help="another Linux machine's install, e.g. aarch64: its size only")
    this_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    parser.add_argument("--python", default=this_python, help="with --machine: its Python, e.g. 3.12")
    args = parser.parse_args()
    if args.machine:
        print(json.dumps(other_machine(args.requirements, args.machine, args.python)))
        return
    print(json.dumps(footprint(args.requirements, args.system_site_packages, args.repeats)))


if __name__ == "__main__":
    main()
