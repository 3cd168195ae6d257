"""`vae-explore`: each picture's size, content and determinism, from the embedded bundles."""

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, HAS_MATPLOTLIB, run_cli
from vae_runtime import VaeDigitsError
from vae_runtime.bundle import embedded_bundle
from vae_runtime.images import load_digit
from vae_runtime.tools.explore import interpolate, label_rows, latent_grid, restyle, slerp

needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason='needs "vae-digits[explore]"')


def test_grid_for_one_label_covers_the_plane(generator):
    image = latent_grid(generator, n=5, span=1.5, label=7)
    assert image.shape == (5 * 28, 5 * 28) and image.dtype == np.uint8
    # the top-left tile is z = (-1.5, +1.5): x rises to the right, y upwards
    expected = np.rint(generator.decode(np.array([[-1.5, 1.5]]), 7)[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(image[:28, :28], expected)
    tiles = image.reshape(5, 28, 5, 28).swapaxes(1, 2).reshape(25, -1)
    assert len({tile.tobytes() for tile in tiles}) == 25  # every point decodes differently


def test_grid_of_every_label_is_a_mosaic(generator):
    image = latent_grid(generator, n=4)
    tile = 4 * 28
    assert image.shape == (2 * tile + 3 * 6, 5 * tile + 6 * 6)


def test_grid_of_a_vae_and_bad_arguments(vae_generator, generator):
    assert latent_grid(vae_generator, n=3).shape == (84, 84)
    with pytest.raises(VaeDigitsError, match="grid size must be 2-100"):
        latent_grid(generator, n=1)
    with pytest.raises(VaeDigitsError, match="span must be a finite number > 0"):
        latent_grid(generator, span=float("nan"))
    with pytest.raises(VaeDigitsError, match="dims must be two different dimensions in 0-1"):
        latent_grid(generator, dims=(0, 2))


def test_label_rows_keep_one_style_per_column(generator):
    image = label_rows(generator, columns=6, seed=3)
    assert image.shape == (2 + 10 * 30, 2 + 6 * 30)
    np.testing.assert_array_equal(image, label_rows(generator, columns=6, seed=3))
    z = np.random.default_rng(3).standard_normal((6, 2), dtype=np.float32)
    first_eight = np.rint(generator.decode(z[:1], 8)[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(image[2 + 8 * 30 : 2 + 8 * 30 + 28, 2:30], first_eight)


def test_interpolation_ends_at_its_endpoints(generator):
    start, end = np.array([-2.0, 0.5]), np.array([1.0, -1.0])
    strip = interpolate(generator, start, end, steps=7, label=2)
    assert strip.shape == (32, 2 + 7 * 30)
    last = np.rint(generator.decode(end[None], 2)[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(strip[2:30, 2 + 6 * 30 : 2 + 6 * 30 + 28], last)
    with pytest.raises(VaeDigitsError, match="give --label"):
        interpolate(generator, start, end)


def test_slerp_keeps_the_norm_between_equal_norm_ends():
    a, b = np.array([2.0, 0.0]), np.array([0.0, 2.0])
    path = slerp(a, b, np.linspace(0, 1, 9)[:, None])
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 2.0, rtol=1e-6)
    np.testing.assert_allclose(path[0], a) and np.testing.assert_allclose(path[-1], b)


def test_restyle_writes_the_source_then_every_label(generator, mnist):
    strip = restyle(generator, mnist.x_test[0], int(mnist.y_test[0]))
    assert strip.shape == (32, 2 + 11 * 30)
    np.testing.assert_array_equal(strip[2:30, 2:30], mnist.x_test[0])


def test_load_digit_from_a_large_dark_on_light_photo(tmp_path, mnist):
    big = np.asarray(Image.fromarray(255 - mnist.x_test[3]).resize((280, 280)))
    path = tmp_path / "photo.png"
    Image.fromarray(big).save(path)
    digit = load_digit(path)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert np.median(digit) < 20 and digit.max() > 200  # white ink on black, like MNIST
    ys, xs = np.nonzero(digit > 50)
    assert 10 < ys.mean() < 18 and 10 < xs.mean() < 18  # centred
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(blank)
    with pytest.raises(VaeDigitsError, match="is blank"):
        load_digit(blank)


@pytest.mark.parametrize(
    ("args", "size"),
    [
        (["grid", "--label", "3", "--n", "10"], (280, 280)),
        (["labels", "--columns", "4"], (4 * 30 + 2, 10 * 30 + 2)),
        (
            [
                "interpolate",
                "--bundle",
                "cvae",
                "--from",
                "-1,0",
                "--to",
                "1,0",
                "--label",
                "5",
                "--steps",
                "6",
            ],
            (182, 32),
        ),
        (["restyle", "--index", "2", "--data", str(DATA)], (332, 32)),
        pytest.param(["clusters", "--data", str(DATA)], (800, 700), marks=needs_matplotlib),
    ],
)
def test_cli_writes_each_picture(tmp_path, args, size):
    out = tmp_path / "picture.png"
    result = run_cli("vae-explore", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        assert image.size == size
        assert np.asarray(image.convert("L")).std() > 10  # not a blank picture


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grid", "--label", "11"], "label 11 is out of range"),
        (["grid", "--out", "x.jpg"], "must be a .png file"),
        (["restyle"], "give either --image FILE or --index N"),
        (["restyle", "--index", "99999", "--data", str(DATA)], "is past the 400 test digits"),
        (["interpolate", "--from", "a,b", "--to", "1,1", "--label", "1"], "is not comma-separated numbers"),
        (["interpolate", "--from", "1,0", "--to", "1,1", "--label", "1"], "start must be 16 finite numbers"),
        (["labels", "--bundle", "{vae}"], "label rows needs a CVAE bundle"),
    ],
)
def test_cli_errors(tmp_path, args, message):
    args = [a.format(vae=embedded_bundle("vae")) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "x.png")]
    result = run_cli("vae-explore", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(HAS_MATPLOTLIB, reason="matplotlib is installed")
def test_clusters_without_matplotlib_gives_the_install_hint(tmp_path):
    result = run_cli("vae-explore", "clusters", "--data", str(DATA), "--out", str(tmp_path / "c.png"))
    assert result.returncode == 2 and 'pip install "vae-digits[explore]"' in result.stderr


def test_untrusted_images_are_checked_before_decoding(tmp_path, monkeypatch):
    import struct
    import zlib

    from vae_runtime import images as explore

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = tmp_path / "bomb.png"  # 100 bytes that claim 5,000 x 5,000 pixels
    header = struct.pack(">IIBBBBB", 5000, 5000, 8, 0, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")))
    decoded = []
    monkeypatch.setattr(explore.np, "asarray", lambda *a, **k: decoded.append(a) or np.zeros((1, 1)))
    with pytest.raises(VaeDigitsError, match=r"is 5000x5000 pixels; at most 16,777,216 are decoded"):
        load_digit(bomb)
    assert decoded == []  # refused from the header alone
    monkeypatch.undo()
    tiff = tmp_path / "digit.tiff"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tiff)
    with pytest.raises(VaeDigitsError, match="is not a PNG, JPEG, BMP, WEBP image"):
        load_digit(tiff)
    monkeypatch.setattr(explore, "MAX_IMAGE_BYTES", 100)
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(big)
    with pytest.raises(VaeDigitsError, match=r"bytes; at most 100 are read"):
        load_digit(big)
    with pytest.raises(VaeDigitsError, match="is not a file"):
        load_digit(tmp_path)


@pytest.fixture(scope="module")
def hq():
    from vae_runtime.generator import Generator

    return Generator.load("cvae-16d")


def test_the_quality_bundle_samples_its_prior_on_every_backend(hq):
    assert hq.manifest.latent_dim == 16 and hq.prior is not None and 0 < hq.manifest.default_temperature < 1
    digits = hq.generate([0, 4, 9], count=8, seed=3)
    assert digits.shape == (24, 28, 28) and digits.std() > 30
    pytest.importorskip("ai_edge_litert")
    from vae_runtime.generator import Generator

    lite = Generator.load("cvae-16d", backend="tflite")
    other = lite.generate([0, 4, 9], count=8, seed=3).astype(int)
    assert np.abs(other - digits.astype(int)).max() <= 1  # same seed, same digits, on every backend


def test_explore_moves_any_two_of_a_large_latent_and_projects_clusters(tmp_path, hq, mnist):
    image = latent_grid(hq, n=4, label=2, dims=(3, 11))
    z = np.zeros((1, 16), np.float32)
    z[0, 3], z[0, 11] = -2.0, 2.0  # the top-left tile
    expected = np.rint(hq.decode(z, 2)[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(image[:28, :28], expected)
    result = run_cli(
        "vae-explore",
        "grid",
        "--bundle",
        "cvae-16d",
        "--dims",
        "3",
        "11",
        "--label",
        "2",
        "--n",
        "4",
        "--out",
        str(tmp_path / "g.png"),
    )
    assert result.returncode == 0, result.stderr
    if HAS_MATPLOTLIB:
        result = run_cli(
            "vae-explore",
            "clusters",
            "--bundle",
            "cvae-16d",
            "--data",
            str(DATA),
            "--out",
            str(tmp_path / "c.png"),
        )
        assert result.returncode == 0 and "PCA of the 16-D z_mean to 2-D" in result.stdout, result.stderr
