"""Property tests: random command lines, random API calls and consistent-looking manifests that lie.

The properties: a command exits 0 with the promised output, or prints one line and exits 2 (the input
is wrong) or 1 (the work failed), writing nothing; an API call works or raises a VaeDigitsError with a
one-line message; a bundle whose manifest contradicts itself or its models is refused with a
BundleError before any array is sized from it. Commands run in-process, so this stays fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from conftest import DATA, HAS_MATPLOTLIB
from vae_runtime import BundleError, Generator, VaeDigitsError, embedded_bundle
from vae_runtime.bundle import sha256_hex
from vae_runtime.cli import eval as eval_cli
from vae_runtime.cli import explore as explore_cli
from vae_runtime.cli import generate as generate_cli
from vae_runtime.clikit.common import main
from vae_runtime.manifest import MAX_TEMPERATURE

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
API_FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Files a hostile user might pass: real digits, non-images, a decompression bomb, a directory."""
    root = tmp_path_factory.mktemp("inputs")
    from vae_runtime.mnist import load_mnist_file

    digit = load_mnist_file(DATA).x_test[0]
    Image.fromarray(255 - np.kron(digit, np.ones((4, 4), np.uint8))).save(root / "digit.png")
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(root / "blank.jpg")
    (root / "text.png").write_text("not an image")
    (root / "empty.png").write_bytes(b"")
    (root / "bomb.png").write_bytes(_png_claiming(60_000, 60_000))
    (root / "dir").mkdir()
    broken = root / "broken"
    shutil.copytree(embedded_bundle("cvae"), broken)
    (broken / "decoder.onnx").write_bytes(b"\0" * 16)
    places = {name: str(root / name) for name in ("digit.png", "blank.jpg", "text.png", "empty.png")}
    return places | {
        "bomb.png": str(root / "bomb.png"),
        "dir": str(root / "dir"),
        "missing": str(root / "missing.png"),
        "broken": str(broken),
        "vae": str(embedded_bundle("vae")),
        "cvae": str(embedded_bundle("cvae")),
        "data": str(DATA),
    }


def _png_claiming(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


NUMBERS = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(["0", "-1", "nan", "inf", "-inf", "", "abc", "1e309", "2.5", "10001", "9" * 30]),
)
LABELS = st.sampled_from(["0", "7", "9", "10", "-1", "seven", "", "3.0"])
LATENTS = st.sampled_from(["-1.5,0", "0,0", "1,2,3", "nan,0", "inf,1", "a,b", "", ",", "1e309,0", "-2,2"])
FILES = st.sampled_from(["digit.png", "blank.jpg", "text.png", "empty.png", "bomb.png", "dir", "missing"])
BUNDLES = st.sampled_from(["cvae", "vae", "broken", "missing", "dir", "digit.png"])
OUTS = st.sampled_from(["out.png", "out.npy", "out.gif", "each/", "missing/dir/x.png", "", "existing.png"])


def invoke(app, args: list[str], prog: str, cwd: Path) -> tuple[int, str, str]:
    """Run a command in-process in `cwd`: (exit code, stdout, stderr). An escaping exception fails."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(sys, "argv", [prog])
        patch.chdir(cwd)
        try:
            main(app, args)
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def check_outcome(code: int, err: str, workdir: Path, before: dict[str, bytes], prog: str) -> None:
    assert code in (0, 1, 2), (code, err)
    if code != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
        assert "Traceback" not in err
        assert snapshot(workdir) == before, "a failed command wrote something"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


@contextlib.contextmanager
def workdir():
    with tempfile.TemporaryDirectory() as name:
        path = Path(name)
        (path / "existing.png").write_bytes(b"keep")
        yield path


PATH_FLAGS = (
    "bundle",
    "--bundle",
    "--out",
    "--image",
    "--from-image",
    "--to-image",
    "--data",
    "--classifier",
)


def command_line(options: dict, inputs: dict, work: Path) -> list[str]:
    """Drawn options -> argv: True is a bare flag, a list repeats the flag, a tuple is one flag's
    values; path-like values are placed among the prepared inputs; "bundle" is the positional."""
    args = []
    for flag, value in options.items():
        if value is True:
            args.append(flag)
        elif isinstance(value, list):
            args += [part for item in value for part in (flag, item)]
        elif isinstance(value, tuple):
            args += [flag, *value]
        else:
            text = place(value, inputs, work) if flag in PATH_FLAGS else value
            args += [text] if flag == "bundle" else [flag, text]
    return args


def place(value: str, inputs: dict, work: Path) -> str:
    if not value:
        return ""
    return inputs.get(value, str(work / value) + ("/" if value.endswith("/") else ""))


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "--bundle": BUNDLES,
            "--label": st.lists(LABELS, min_size=1, max_size=3),
            "--count": NUMBERS,
            "--seed": NUMBERS,
            "--temperature": NUMBERS,
            "--backend": st.sampled_from(["auto", "onnx", "tflite", "cuda", ""]),
            "--out": OUTS,
            "--force": st.just(True),
            "--info": st.just(True),
        },
    )
)
def test_vae_generate_command_lines(inputs, options):
    with workdir() as work:
        args = ["--out", str(work / "default.png"), *command_line(options, inputs, work)]
        before = snapshot(work)
        code, out, err = invoke(generate_cli.app, args, "vae-generate", work)
        check_outcome(code, err, work, before, "vae-generate")
        if code == 0 and "--info" not in options:
            written = out.strip().rsplit(" to ", 1)[1]
            assert Path(written).exists(), out


EXPLORE = {
    "grid": {
        "--n": st.sampled_from(["2", "3", "5", "0", "101", "x", "-4"]),
        "--span": NUMBERS,
        "--label": LABELS,
        "--dims": st.tuples(st.sampled_from(["0", "1", "2", "-1", "x"]), st.sampled_from(["0", "1", "7"])),
    },
    "labels": {"--columns": st.sampled_from(["1", "3", "0", "101", "x"]), "--seed": NUMBERS},
    "interpolate": {
        "--from": LATENTS,
        "--to": LATENTS,
        "--from-image": FILES,
        "--to-image": FILES,
        "--label": LABELS,
        "--steps": st.sampled_from(["2", "4", "1", "201", "x"]),
        "--spherical": st.just(True),
    },
    "restyle": {
        "--image": FILES,
        "--index": st.sampled_from(["0", "5", "399", "400", "-1", "x"]),
        "--label": LABELS,
        "--data": st.sampled_from(["data", "missing", "dir", "text.png"]),
    },
}


@FUZZ
@given(st.data())
def test_vae_explore_command_lines(inputs, data):
    command = data.draw(st.sampled_from(sorted(EXPLORE)))
    options = data.draw(
        st.fixed_dictionaries(
            {}, optional={**EXPLORE[command], "--bundle": BUNDLES, "--out": OUTS, "--force": st.just(True)}
        )
    )
    with workdir() as work:
        args = [command, "--out", str(work / "picture.png"), *command_line(options, inputs, work)]
        before = snapshot(work)
        code, out, err = invoke(explore_cli.app, args, "vae-explore", work)
        check_outcome(code, err, work, before, "vae-explore")
        if code == 0:
            written = Path(out.split("wrote ", 1)[1].split(" (", 1)[0])
            with Image.open(written) as picture:
                assert picture.format == "PNG" and min(picture.size) >= 28


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="clusters needs matplotlib")
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "--bundle": st.sampled_from(["cvae", "vae", "missing"]),
            "--data": st.sampled_from(["data", "missing", "text.png"]),
            "--limit": st.sampled_from(["1", "50", "0", "x"]),
        },
    )
)
def test_vae_explore_clusters_command_lines(inputs, options):
    with workdir() as work:
        args = ["clusters", "--out", str(work / "c.png"), "--data", str(DATA)]
        args += command_line(options, inputs, work)
        before = snapshot(work)
        code, _, err = invoke(explore_cli.app, args, "vae-explore", work)
        check_outcome(code, err, work, before, "vae-explore")
        assert code != 0 or (work / "c.png").exists()


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "bundle": st.sampled_from(["cvae", "vae", "broken", "missing", "digit.png"]),
            "--data": st.sampled_from(["data", "missing", "dir", "text.png"]),
            "--seed": NUMBERS,
            "--per-label": st.sampled_from(["2", "5", "1", "0", "10001", "x"]),
            "--temperature": NUMBERS,
            "--classifier": st.sampled_from(["missing", "text.png", "cvae"]),
            "--json": st.just(True),
        },
    )
)
def test_vae_eval_command_lines(inputs, options):
    with workdir() as work:
        args = [*command_line(options, inputs, work), "--data", str(DATA), "--per-label", "3"]
        before = snapshot(work)
        code, out, err = invoke(eval_cli.app, args, "vae-eval", work)
        check_outcome(code, err, work, before, "vae-eval")
        if code == 0 and "--json" in options:
            assert json.loads(out)["digits"] == 400


# The Python API --------------------------------------------------------------------------------------

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.binary(max_size=4),
    st.lists(st.integers(-12, 12), max_size=4),
    st.lists(st.text(max_size=2), max_size=3),
    st.tuples(st.integers(0, 9), st.text(max_size=1)),
    st.sampled_from(
        [
            np.int64(3),
            np.uint64(2**63),
            np.float32(7.0),
            np.array([1, 2]),
            np.array([[1]]),
            np.array(["3"]),
            np.array([True]),
            np.array([], np.int64),
            {3: 4},
            {5},
            object(),
        ]
    ),
)


def arrays(rows: st.SearchStrategy[int], width: st.SearchStrategy[tuple]) -> st.SearchStrategy:
    """Arrays of hostile shapes, dtypes and values (extremes, NaN, infinities, subnormals)."""
    dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_, np.complex64])
    shapes = st.tuples(rows, width).map(lambda spec: (spec[0], *spec[1]))
    return hnp.arrays(dtypes, shapes)


def one_line_error(error: VaeDigitsError) -> None:
    assert str(error) and "\n" not in str(error), repr(error)


LABEL_OR_ANYTHING = st.one_of(st.integers(0, 9), ANYTHING)


@API_FUZZ
@given(
    labels=LABEL_OR_ANYTHING,
    count=st.one_of(st.integers(1, 3), ANYTHING),
    seed=st.one_of(st.integers(0, 2**64), ANYTHING),
    temperature=st.one_of(st.floats(0, 1e308), ANYTHING),
)
@example(labels=3, count=2, seed=0, temperature=1e308)  # z overflows float32
@example(labels=np.array([[1, 2]]), count=1, seed=None, temperature=1.0)
def test_generate_takes_anything(generator, labels, count, seed, temperature):
    assume(not (isinstance(count, int) and count > 50))  # large but valid requests are just slow
    try:
        digits = generator.generate(labels, count=count, seed=seed, temperature=temperature)
    except VaeDigitsError as error:
        one_line_error(error)
        return
    used = generator.manifest.default_temperature if temperature is None else float(temperature)
    assert 0 < used <= MAX_TEMPERATURE  # beyond it z overflows float32
    assert digits.dtype == np.uint8 and digits.ndim == 3 and digits.shape[1:] == (28, 28)


@API_FUZZ
@given(
    z=st.one_of(arrays(st.integers(0, 3), st.sampled_from([(2,), (3,), (), (2, 2)])), ANYTHING),
    labels=LABEL_OR_ANYTHING,
)
@example(z=np.array([[1e300, 0.0]]), labels=3)  # finite in float64, infinite in float32
@example(z=[[1, 2], [3]], labels=3)  # ragged
def test_decode_takes_anything(generator, z, labels):
    try:
        images = generator.decode(z, labels)
    except VaeDigitsError as error:
        one_line_error(error)
        return
    assert images.dtype == np.float32 and np.isfinite(images).all()
    assert images.min() >= 0 and images.max() <= 1


@API_FUZZ
@given(
    images=st.one_of(
        arrays(st.integers(0, 2), st.sampled_from([(28, 28), (28, 28, 1), (28,), (32, 32)])), ANYTHING
    ),
    labels=LABEL_OR_ANYTHING,
)
@example(images=np.zeros((0, 28, 28), np.float32), labels=None)
@example(images=[[0] * 28] * 27 + [[0] * 3], labels=1)  # ragged
def test_encode_takes_anything(generator, images, labels):
    try:
        z_mean, z_log_var = generator.encode(images, labels)
    except VaeDigitsError as error:
        one_line_error(error)
        return
    assert z_mean.shape == z_log_var.shape and np.isfinite(z_mean).all()


@API_FUZZ
@given(labels=ANYTHING)
def test_label_ids_take_anything(generator, labels):
    try:
        ids = generator.label_ids(labels)
    except VaeDigitsError as error:
        one_line_error(error)
        return
    assert ids.dtype == np.int64 and ((ids >= 0) & (ids < 10)).all()


@FUZZ
@given(
    bundle=st.one_of(st.sampled_from(["cvae", "missing", "broken"]), ANYTHING),
    backend=st.one_of(st.sampled_from(["auto", "onnx", "tflite"]), ANYTHING),
    precision=st.one_of(st.sampled_from([None, "fp32", "int8", "fp16"]), ANYTHING),
    threads=st.one_of(st.integers(-2, 3), ANYTHING),
)
@example(bundle=True, backend="onnx", precision=None, threads=0)
@example(bundle="cvae", backend="onnx", precision=None, threads=-1)
@example(bundle="cvae", backend=["onnx"], precision=None, threads=0)
def test_load_takes_anything(inputs, bundle, backend, precision, threads):
    if isinstance(bundle, str) and bundle in inputs:
        bundle = inputs[bundle]
    try:
        loaded = Generator.load(bundle, backend=backend, precision=precision, threads=threads)
    except VaeDigitsError as error:
        one_line_error(error)
        return
    assert loaded.generate(1 if loaded.manifest.conditional else None, seed=0).shape == (1, 28, 28)


# Manifests that are well-formed, sealed, and wrong ----------------------------------------------------

BASE = json.loads((embedded_bundle("cvae") / "manifest.json").read_text())
ONNX_ENTRIES = [i for i, f in enumerate(BASE["files"]) if f["format"] == "onnx" and f["precision"] == "fp32"]


def _set_tensor(manifest, index, key, position, name=None, shape=None):
    tensors = manifest["files"][index][key]
    if position < len(tensors):
        tensors[position].update({k: v for k, v in (("name", name), ("shape", shape)) if v is not None})


MUTATIONS = [
    st.tuples(st.just("latent_dim"), st.sampled_from([1, 3, 8, 256, 257, 10**9])),
    st.tuples(st.just("num_classes"), st.sampled_from([1, 9, 11, 255, 10**6])),
    st.tuples(
        st.just("labels"), st.sampled_from([[str(i) for i in range(9)], ["a"] * 10, list("abcdefghij")])
    ),
    st.tuples(st.just("kind"), st.just("vae")),
    st.tuples(st.just("image_shape"), st.sampled_from([[28, 28, 3], [32, 32, 1], [28, 28]])),
    st.tuples(st.just("default_temperature"), st.sampled_from([0.5, 0, -1, 11, 1e308, "1"])),
    st.tuples(st.just("duplicate"), st.sampled_from(range(len(BASE["files"])))),
    st.tuples(st.just("default"), st.tuples(st.sampled_from(range(len(BASE["files"]))), st.booleans())),
    st.tuples(st.just("swap"), st.tuples(st.sampled_from(ONNX_ENTRIES), st.sampled_from(ONNX_ENTRIES))),
    st.tuples(
        st.just("tensor"),
        st.tuples(
            st.sampled_from(range(len(BASE["files"]))),
            st.sampled_from(["inputs", "outputs"]),
            st.integers(0, 1),
            st.sampled_from([None, "z", "label", "image", "x"]),
            st.sampled_from(
                [None, ["batch", 2], ["batch", 3], [1, 2], ["batch", 28, 28, 1], ["batch", 10**9]]
            ),
        ),
    ),
    st.tuples(st.just("batch_sizes"), st.sampled_from([[1], [1, 16, 128], [16, 1], [0], [5000]])),
    st.tuples(st.just("drop"), st.sampled_from(range(len(BASE["files"])))),
]


def mutate(manifest: dict, mutation) -> None:
    what, value = mutation
    files = manifest["files"]
    if what in ("latent_dim", "num_classes", "labels", "kind", "image_shape", "default_temperature"):
        manifest[what] = value
    elif what == "duplicate":
        files.append(json.loads(json.dumps(files[value % len(files)])))
    elif what == "default" and value[0] < len(files):
        files[value[0]]["default"] = value[1]
    elif what == "swap":  # an entry names another real file, sealed with that file's checksum
        a, b = value
        if a < len(files) and b < len(files):
            for key in ("path", "sha256", "size"):
                files[a][key] = BASE["files"][b][key]
    elif what == "tensor" and value[0] < len(files):
        _set_tensor(manifest, *value)
    elif what == "batch_sizes":
        next(f for f in files if f["format"] == "tflite")["batch_sizes"] = value
    elif what == "drop" and len(files) > 1:
        files.pop(value % len(files))


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(MUTATIONS), min_size=1, max_size=3))
def test_sealed_manifests_that_lie_are_refused(tmp_path_factory, mutations):
    bundle = tmp_path_factory.mktemp("lying")
    for entry in BASE["files"]:
        shutil.copy(embedded_bundle("cvae") / entry["path"], bundle / entry["path"])
    manifest = json.loads(json.dumps(BASE))
    for mutation in mutations:
        mutate(manifest, mutation)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    for backend in ("onnx", "tflite"):
        try:
            loaded = Generator.load(bundle, backend=backend)
        except VaeDigitsError as error:
            one_line_error(error)
            continue
        # accepted: then it must really be what it says, and work
        info = loaded.manifest
        assert info.latent_dim == 2 and info.num_classes == 10 and info.kind == "cvae"
        digits = loaded.generate(3, count=2, seed=0)
        assert digits.shape == (2, 28, 28)
        assert loaded.encode(digits, 3)[0].shape == (2, 2)


def test_a_swapped_model_file_is_caught_by_its_real_signature(tmp_path):
    bundle = tmp_path / "swapped"
    shutil.copytree(embedded_bundle("cvae"), bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    decoder = next(f for f in manifest["files"] if f["path"] == "decoder.onnx")
    data = (bundle / "encoder.onnx").read_bytes()
    (bundle / "decoder.onnx").write_bytes(data)  # the encoder's bytes under the decoder's name
    decoder.update(sha256=sha256_hex(data), size=len(data))
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="decoder.onnx does not have the inputs and outputs"):
        Generator.load(bundle)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(latent_dim=3), r"manifest inputs of .* disagree with a cvae of latent_dim 3"),
        (lambda m: m.update(latent_dim=10**9), "'latent_dim' must be an integer in 1-256"),
        (lambda m: m.update(num_classes=9), "'labels' must list 9 label names"),
        (lambda m: m.update(kind="vae"), "'num_classes' must be 0 for a plain VAE"),
        (lambda m: m.update(image_shape=[32, 32, 1]), r"image_shape \[32, 32, 1\] is not \[28, 28, 1\]"),
        (lambda m: m["files"].append(dict(m["files"][0])), "lists 'decoder.onnx' more than once"),
        (lambda m: m["files"][0].update(default=False), "marks 0 onnx decoder files default"),
        (
            lambda m: next(f for f in m["files"] if not f["default"] and f["role"] == "decoder").update(
                default=True
            ),
            r"marks 2 \w+ decoder files default",
        ),
        (lambda m: m.update(files=[f for f in m["files"] if f["path"] != "encoder.tflite"]), "marks 0"),
        (lambda m: m.update(files=[f for f in m["files"] if f["role"] != "encoder"]), "but no onnx encoder"),
        (lambda m: m["files"][0].update(size=2**40), "'size' must be an integer in 1-"),
        (lambda m: m.update(default_temperature=float("inf")), "default_temperature must be a number"),
        (lambda m: m["files"][0].update(batch_sizes=[16]), "batch_sizes are for tflite files only"),
        (lambda m: m["files"][0].update(recommended="yes"), "'recommended' must be true or false"),
    ],
)
def test_inconsistent_manifest_is_refused_by_name(tmp_path, change, message):
    bundle = tmp_path / "bundle"
    shutil.copytree(embedded_bundle("cvae"), bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        Generator.load(bundle)
