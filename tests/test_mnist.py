"""Loading MNIST from a Keras npz or IDX files (numpy only), and its errors."""

import gzip

import numpy as np
import pytest

from vae_runtime.errors import DataError
from vae_runtime.mnist import IDX_FILES, load_mnist_file


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def test_npz_loads_real_digits(mnist):
    assert mnist.x_train.shape == (1200, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (400, 28, 28)
    assert set(np.unique(mnist.y_train)) == set(range(10))
    assert 20 < mnist.x_train.mean() < 60  # real digits: mostly black, some ink


@pytest.mark.parametrize("compress", [False, True])
def test_idx_directory_equals_npz(tmp_path, mnist, compress):
    for key, name in IDX_FILES.items():
        write_idx(tmp_path / name, getattr(mnist, key), compress)
    loaded = load_mnist_file(tmp_path)
    for key in IDX_FILES:
        np.testing.assert_array_equal(getattr(loaded, key), getattr(mnist, key))


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist_file(tmp_path / "nope.npz")


def test_not_an_npz(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_mnist_file(bad)


def test_npz_missing_arrays(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lacks the arrays y_train, x_test, y_test"):
        load_mnist_file(path)


def test_wrong_image_shape(tmp_path, mnist):
    path = tmp_path / "shape.npz"
    np.savez(
        path,
        x_train=np.zeros((5, 32, 32), np.uint8),
        y_train=np.zeros(5, np.uint8),
        x_test=mnist.x_test,
        y_test=mnist.y_test,
    )
    with pytest.raises(DataError, match=r"x_train .* has shape \(5, 32, 32\), expected \(N, 28, 28\)"):
        load_mnist_file(path)


def test_labels_out_of_range(tmp_path, mnist):
    path = tmp_path / "labels.npz"
    labels = mnist.y_test.copy()
    labels[0] = 11
    np.savez(path, x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test, y_test=labels)
    with pytest.raises(DataError, match="y_test .* must hold integer labels 0-9"):
        load_mnist_file(path)


def test_truncated_idx(tmp_path, mnist):
    for key, name in IDX_FILES.items():
        write_idx(tmp_path / name, getattr(mnist, key), compress=False)
    images = tmp_path / IDX_FILES["x_test"]
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_mnist_file(tmp_path)


def test_idx_directory_missing_file(tmp_path):
    with pytest.raises(DataError, match="has no train-images-idx3-ubyte"):
        load_mnist_file(tmp_path)


def test_offline_without_cache_names_data_option(tmp_path, monkeypatch):
    import urllib.request

    from vae_runtime import mnist

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(mnist, "KERAS_CACHE", tmp_path / "datasets" / "mnist.npz")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="cannot be downloaded .* pass --data PATH"):
        mnist.load_mnist_anywhere(None)
    assert not (tmp_path / "datasets").exists()


def test_keras_cache_file_is_used(tmp_path, monkeypatch, mnist):
    import shutil

    from conftest import DATA
    from vae_runtime import mnist as module

    cache = tmp_path / "mnist.npz"
    shutil.copy(DATA, cache)
    monkeypatch.setattr(module, "KERAS_CACHE", cache)
    assert module.load_mnist_anywhere(None).x_test.shape == mnist.x_test.shape
