"""The runtime with either engine alone: the dependencies by platform (pyproject.toml, lite/pyproject.toml),
and every command in a process where only onnxruntime, or only a TFLite interpreter, can be imported."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from conftest import DATA, cli_argv, run_cli
from vae_runtime.backends import available, tflite_engine

ROOT = Path(__file__).resolve().parent.parent
MAIN, LITE = ROOT / "pyproject.toml", ROOT / "lite" / "pyproject.toml"
MACHINES = ("x86_64", "aarch64", "armv7l")
# what a process imports instead when an engine is "not installed": None in sys.modules fails the import
BLOCKED = {"onnx": ("onnxruntime",), "tflite": ("ai_edge_litert", "tflite_runtime")}
needs_both = pytest.mark.skipif(
    not (available("onnx") and available("tflite")), reason='needs "vae-digits[tflite]" (both engines)'
)


def pyproject(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def installed(requirements: list[str], machine: str, python: str = "3.11") -> set[str]:
    """The names of the requirements that pip installs on Linux with `python` on `machine`."""
    environment = {"platform_machine": machine, "sys_platform": "linux", "python_version": python}
    return {
        requirement.name
        for requirement in map(Requirement, requirements)
        if requirement.marker is None or requirement.marker.evaluate(environment)
    }


def numpy_below_2(requirements: list[str], machine: str, python: str) -> bool:
    environment = {"platform_machine": machine, "sys_platform": "linux", "python_version": python}
    numpys = [r for r in map(Requirement, requirements) if r.name == "numpy"]
    chosen = [r for r in numpys if r.marker is None or r.marker.evaluate(environment)]
    assert len(chosen) == 1, (machine, python, chosen)
    return not chosen[0].specifier.contains("2.0.0")


# the runtime-only venvs of .ci/run run a copy of tests/ without the source tree
needs_source = pytest.mark.skipif(not LITE.is_file(), reason="needs the source tree (lite/pyproject.toml)")


@needs_source
@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_engines_by_platform(python):
    main, lite = (pyproject(path)["project"] for path in (MAIN, LITE))
    engines = {"onnxruntime", "ai-edge-litert", "tflite-runtime"}
    # lite on 64-bit ARM: tflite-runtime 2.14 (8 MB to LiteRT's 50) where it has wheels, Python 3.11
    lite_aarch64 = {"tflite-runtime"} if python == "3.11" else {"ai-edge-litert"}
    expected = {
        # (vae-digits, vae-digits[tflite], vae-digits-lite)
        "x86_64": ({"onnxruntime"}, {"onnxruntime", "ai-edge-litert"}, {"ai-edge-litert"}),
        "aarch64": ({"onnxruntime"}, {"onnxruntime", "ai-edge-litert"}, lite_aarch64),
        "armv7l": ({"tflite-runtime"}, {"tflite-runtime"}, {"tflite-runtime"}),
    }
    with_tflite = main["dependencies"] + main["optional-dependencies"]["tflite"]
    for machine in MACHINES:
        got = (
            installed(main["dependencies"], machine, python) & engines,
            installed(with_tflite, machine, python) & engines,
            installed(lite["dependencies"], machine, python) & engines,
        )
        assert got == expected[machine], machine
        # tflite-runtime 2.14 is built against numpy 1.x: the lite install keeps numpy below 2 beside it
        assert numpy_below_2(lite["dependencies"], machine, python) == ("tflite-runtime" in got[2]), machine


@needs_source
def test_lite_is_the_same_runtime_with_other_dependencies():
    main, lite = (pyproject(path) for path in (MAIN, LITE))
    for key in ("version", "requires-python", "license"):
        assert lite["project"][key] == main["project"][key], key
    runtime_scripts = {k: v for k, v in main["project"]["scripts"].items() if v.startswith("vae_runtime.")}
    assert lite["project"]["scripts"] == runtime_scripts
    extras = (main["project"]["optional-dependencies"], lite["project"]["optional-dependencies"])
    # pillow, a dependency of the main package, is lite's images extra: the lite install writes PNGs
    # without it and needs it only to read images
    pillow = [r for r in main["project"]["dependencies"] if Requirement(r).name == "pillow"]
    assert extras[1] == {"serve": extras[0]["serve"], "images": pillow}
    setuptools = (main["tool"]["setuptools"], lite["tool"]["setuptools"])
    assert setuptools[1]["packages"] == [p for p in setuptools[0]["packages"] if p.startswith("vae_runtime")]
    assert setuptools[1]["package-data"] == {"vae_runtime": setuptools[0]["package-data"]["vae_runtime"]}
    assert (LITE.parent / setuptools[1]["package-dir"]["vae_runtime"]).resolve() == ROOT / "runtime"
    dependencies = (main["project"]["dependencies"], lite["project"]["dependencies"])
    for machine in MACHINES:  # where main installs a dependency but onnxruntime and pillow, lite does too
        for python in ("3.11", "3.12"):
            wanted = installed(dependencies[0], machine, python) - {"onnxruntime", "pillow"}
            assert wanted <= installed(dependencies[1], machine, python), (machine, python)
    lite_requirements = [Requirement(r) for r in dependencies[1]]
    for requirement in map(Requirement, dependencies[0]):  # at main's versions (lite may bound numpy below 2)
        for same in (r for r in lite_requirements if r.name == requirement.name):
            assert set(requirement.specifier) <= set(same.specifier), same


def alone(engine: str, command: str, *args: str) -> subprocess.CompletedProcess:
    """A console script in a fresh process that can import the modules of `engine` and not the other's."""
    others = [module for name, modules in BLOCKED.items() if name != engine for module in modules]
    argv = cli_argv(command, *args)
    argv[2] = f"import sys; sys.modules.update(dict.fromkeys({others}, None)); {argv[2]}"
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


@needs_both
@pytest.mark.parametrize("engine", ["onnx", "tflite"])
def test_generate_with_one_engine_alone_gives_its_digits(tmp_path, engine):
    args = ("--label", "7", "--count", "16", "--seed", "0", "--out")
    alone_out, both_out = tmp_path / "alone.npy", tmp_path / "both.npy"
    result = alone(engine, "vae-generate", *args, str(alone_out))
    assert result.returncode == 0, result.stderr
    both = run_cli("vae-generate", "--backend", engine, *args, str(both_out))
    assert both.returncode == 0, both.stderr
    np.testing.assert_array_equal(np.load(alone_out), np.load(both_out))


@needs_both
@pytest.mark.parametrize("engine", ["onnx", "tflite"])
def test_the_other_engine_gets_one_line_saying_what_to_install(engine):
    other = "tflite" if engine == "onnx" else "onnx"
    result = alone(engine, "vae-generate", "--backend", other, "--count", "1", "--out", "x.npy")
    assert result.returncode == 2
    hint = {"onnx": "pip install onnxruntime", "tflite": "vae-digits-lite"}[other]
    assert result.stderr.strip().count("\n") == 0 and hint in result.stderr, result.stderr


@needs_both
def test_eval_with_tflite_alone_judges_with_the_tflite_classifier():
    args = ("--data", str(DATA), "--per-label", "20", "--json")
    tflite_only = alone("tflite", "vae-eval", *args)
    both = run_cli("vae-eval", *args)
    assert tflite_only.returncode == 0 and both.returncode == 0, tflite_only.stderr + both.stderr
    accuracy = [json.loads(run.stdout)["generation"]["accuracy"] for run in (tflite_only, both)]
    # the classifier's two files agree to 1e-5 (scripts/classifier_tflite.py), and the engines' fp32
    # digits to a grey level: the same judgement, to a digit or two of the 200
    assert abs(accuracy[0] - accuracy[1]) <= 0.01


@needs_both
def test_bench_with_tflite_alone_names_what_it_did_not_time():
    result = alone("tflite", "vae-bench", "cvae-16d", "--rounds", "1", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["not_timed"]) == {"decoder.onnx", "encoder.onnx"}
    assert all("pip install onnxruntime" in reason for reason in report["not_timed"].values())


@pytest.mark.numeric  # the interpreter's build, which differs by machine
@pytest.mark.skipif(
    not available("tflite") or not tflite_engine().startswith("tflite-runtime"),
    reason="needs tflite-runtime as the TFLite interpreter (32-bit ARM's)",
)
def test_a_file_newer_than_the_interpreter_gets_one_line_saying_why():
    from vae_runtime import BundleError
    from vae_runtime.generator import Generator

    with pytest.raises(BundleError) as caught:
        Generator.load("cvae", backend="tflite", precision="dynamic")
    message = str(caught.value)
    assert "\n" not in message
    expected = f"decoder.dynamic.tflite needs a newer TFLite interpreter than {tflite_engine()} ("
    assert message.startswith(expected)
    assert "choose another precision" in message
    # the runtime's own choice, the default precision, runs on the same interpreter
    assert Generator.load("cvae", backend="tflite").generate(7, count=2, seed=0).shape == (2, 28, 28)
