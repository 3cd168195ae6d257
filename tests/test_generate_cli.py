"""`vae-generate`: outputs as a user sees them, and every bad input as one line."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import HAS_TENSORFLOW, run_cli
from vae_runtime.bundle import embedded_bundle, read_manifest
from vae_runtime.generator import Generator
from vae_runtime.images import grid


def test_png_grid_of_sevens(tmp_path):
    out = tmp_path / "sevens.png"
    result = run_cli("vae-generate", "--label", "7", "--count", "16", "--seed", "0", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 16 digits (labels 7) to {out}"
    image = np.asarray(Image.open(out))
    assert image.shape == (2 + 30, 2 + 16 * 30)
    expected = grid(Generator.load().generate(7, count=16, seed=0), columns=16)
    np.testing.assert_array_equal(image, expected)


def test_npy_holds_the_uint8_digits_in_label_order(tmp_path):
    out = tmp_path / "digits.npy"
    result = run_cli(
        "vae-generate", "--label", "3", "--label", "5", "--count", "4", "--seed", "11", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    digits = np.load(out)
    assert digits.dtype == np.uint8 and digits.shape == (8, 28, 28)
    np.testing.assert_array_equal(digits, Generator.load().generate([3, 5], count=4, seed=11))


def test_directory_gets_one_png_per_digit(tmp_path):
    out = tmp_path / "each"
    result = run_cli(
        "vae-generate", "--label", "2", "--label", "8", "--count", "3", "--seed", "1", "--out", f"{out}/"
    )
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        f"label{label}_{i:05d}.png"
        for label, i in [("2", 0), ("2", 1), ("2", 2), ("8", 3), ("8", 4), ("8", 5)]
    ]
    assert np.asarray(Image.open(out / names[0])).shape == (28, 28)


def test_same_seed_same_file(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (a, b):
        assert run_cli("vae-generate", "--seed", "5", "--count", "3", "--out", str(out)).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_info_summarises_the_bundle():
    result = run_cli("vae-generate", "--info")
    assert result.returncode == 0, result.stderr
    assert "kind        cvae, latent_dim 16, labels 0 1 2 3 4 5 6 7 8 9" in result.stdout
    assert "decoder.onnx" in result.stdout and "validation total" in result.stdout


def test_embedded_bundles_by_name(tmp_path):
    result = run_cli("vae-generate", "--bundle", "cvae", "--info", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "kind        cvae, latent_dim 2" in result.stdout
    assert "prior.json" not in result.stdout
    result = run_cli("vae-generate", "--bundle", "cvae-16d", "--info", cwd=tmp_path)
    assert "kind        cvae, latent_dim 16" in result.stdout
    temperature = read_manifest(embedded_bundle("cvae-16d")).default_temperature
    assert f"per-label Gaussian mixture (prior.json), temperature {temperature:g}" in result.stdout
    (tmp_path / "cvae-16d").mkdir()  # a directory of that name wins over the embedded bundle
    assert "has no manifest.json" in run_cli("vae-generate", "--bundle", "cvae-16d", cwd=tmp_path).stderr


def test_vae_bundle_without_labels(tmp_path):
    out = tmp_path / "vae.png"
    result = run_cli(
        "vae-generate", "--bundle", str(embedded_bundle("vae")), "--count", "8", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "(unconditional)" in result.stdout and out.exists()


@pytest.fixture
def broken_bundle(tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(embedded_bundle("cvae"), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"][0]["sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


BAD = [
    (["--label", "10"], "label 10 is out of range"),
    (["--label", "seven"], "unknown label 'seven'"),
    (["--bundle", "{vae}", "--label", "3"], "plain VAE: it takes no labels"),
    (["--count", "0"], "--count"),
    (["--count", "1000000"], "--count"),
    (["--temperature", "0"], "temperature must be a finite number > 0"),
    (["--temperature", "-2"], "temperature must be a finite number > 0"),
    (["--temperature", "nan"], "temperature must be a finite number > 0"),
    (["--temperature", "inf"], "temperature must be a finite number > 0"),
    (["--seed", "-3"], "--seed"),
    (["--bundle", "/no/such/bundle"], "bundle /no/such/bundle is not a directory"),
    (["--bundle", "{broken}"], "does not match its manifest checksum"),
    (["--backend", "cuda"], "'cuda' is not one of 'auto', 'onnx', 'tflite'"),
    (["--out", "{tmp}/digits.gif"], "is not a .png file (one grid), a .npy file"),
    (["--out", "{tmp}/missing/dir/x.png"], "does not exist"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, broken_bundle, args, message):
    places = {"vae": embedded_bundle("vae"), "broken": broken_bundle, "tmp": tmp_path}
    args = [arg.format(**places) for arg in args]
    out = tmp_path / "out.png"
    if "--out" not in args:
        args += ["--out", str(out)]
    before = set(tmp_path.iterdir())
    result = run_cli("vae-generate", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert set(tmp_path.iterdir()) == before


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "x.png"
    out.write_bytes(b"keep me")
    result = run_cli("vae-generate", "--out", str(out))
    assert result.returncode == 2 and "already exists; pass --force" in result.stderr
    assert out.read_bytes() == b"keep me"
    assert run_cli("vae-generate", "--out", str(out), "--force").returncode == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "command", ["vae-generate", "vae-explore", "vae-eval", "vae-bench", "vae-train", "vae-export"]
)
def test_every_command_has_help(command):
    if command in ("vae-train", "vae-export") and not HAS_TENSORFLOW:
        pytest.skip("needs the training stack")
    result = run_cli(command, "--help")
    assert result.returncode == 0 and f"Usage: {command} [OPTIONS]" in result.stdout, result.stderr
    assert "--version" in result.stdout and "Example" in result.stdout and result.stderr == ""
    version = run_cli(command, "--version")
    assert version.returncode == 0 and version.stdout.startswith(f"{command} ")


HELP_IMPORTS = """
import sys
from {module} import app
from vae_runtime.clikit.common import main
try:
    main(app, ["--help"])
except SystemExit:
    pass
print(sorted(m for m in ("tensorflow", "keras", "onnxruntime", "PIL", "numpy") if m in sys.modules))
"""


@pytest.mark.parametrize(
    "command", ["vae-generate", "vae-explore", "vae-eval", "vae-bench", "vae-train", "vae-export"]
)
def test_help_imports_no_heavy_library(command):
    from conftest import CLI_MODULES

    if command in ("vae-train", "vae-export") and not HAS_TENSORFLOW:
        pytest.skip("needs the training stack")
    code = HELP_IMPORTS.format(module=CLI_MODULES[command])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr


def run_in_terminal(*args: str) -> str:
    """What a user sees running a command in a terminal (a pseudo-terminal), as raw output."""
    import os
    import pty

    from conftest import cli_argv

    chunks = []

    def read(fd: int) -> bytes:
        data = os.read(fd, 4096)
        chunks.append(data)
        return data

    status = pty.spawn(cli_argv(*args), read)
    assert os.waitstatus_to_exitcode(status) == 0, b"".join(chunks)
    return b"".join(chunks).decode()


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_elsewhere(tmp_path):
    terminal = run_in_terminal("vae-explore", "grid", "--n", "12", "--out", str(tmp_path / "a.png"))
    assert "decoding" in terminal and "\x1b[" in terminal  # a live bar, redrawn in place
    assert f"wrote {tmp_path / 'a.png'}" in terminal
    piped = run_cli("vae-explore", "grid", "--n", "12", "--out", str(tmp_path / "b.png"))
    assert piped.returncode == 0 and piped.stdout == f"wrote {tmp_path / 'b.png'} (1716x690)\n"
    assert "\x1b" not in piped.stdout + piped.stderr and "\r" not in piped.stdout + piped.stderr


def test_training_progress_restarts_a_bar_per_epoch_on_a_terminal():
    import io

    from vae_runtime.clikit.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    with Progress(1, "starting", stream=screen) as bar:
        for epoch in (1, 2):
            for step in range(1, 5):
                if step == 1:
                    bar.restart(4, f"epoch {epoch}/2")
                bar.update(step)
            bar.line(f"epoch   {epoch}/2  loss ...")
    shown = screen.getvalue()
    assert "epoch 1/2" in shown and "epoch 2/2" in shown and "ETA" in shown and "4/4" in shown
    assert "epoch   1/2  loss ..." in shown and "\x1b[" in shown
