"""The fitted latent prior: EM that finds known mixtures, prior.json validation, the sampling stream,
and a bundle exported with a prior that `Generator.generate` samples from."""

import json
import re
import shutil

import numpy as np
import pytest

from conftest import DATA, needs_tensorflow
from vae_runtime import BundleError, Generator, VaeDigitsError, stream
from vae_runtime.bundle import sha256_hex
from vae_runtime.prior import Prior


@pytest.mark.numeric
def test_em_recovers_a_known_mixture(rng):
    pytest.importorskip("vae_export", reason="the lite install has no vae_export")
    from vae_export.prior import fit_gmm

    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    x = np.concatenate(
        [rng.multivariate_normal([-6, 0], cov, 3000), rng.multivariate_normal([6, 2], 0.25 * np.eye(2), 1000)]
    )
    weights, means, cholesky = fit_gmm(x, 2, seed=0)
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(weights[order], [0.75, 0.25], atol=0.02)
    np.testing.assert_allclose(means[order], [[-6, 0], [6, 2]], atol=0.1)
    np.testing.assert_allclose(cholesky[order[0]] @ cholesky[order[0]].T, cov, atol=0.1)
    np.testing.assert_array_equal(fit_gmm(x, 2, seed=0)[1], means)  # deterministic for a seed


def test_a_plain_vae_prior_round_trips_through_its_json(rng):
    pytest.importorskip("vae_export", reason="the lite install has no vae_export")
    from vae_export.prior import fit_prior, prior_json

    z = np.concatenate([rng.normal(-3, 0.5, (500, 3)), rng.normal(3, 0.5, (500, 3))])
    fitted = fit_prior(z, None, num_classes=0, components=2)
    text = json.dumps(prior_json(fitted, (), fitted_on={"split": "train", "digits": 1000}))
    loaded = Prior.from_dict(json.loads(text), 3, ())
    for name in ("weights", "means", "cholesky"):  # written at float32 precision, as the runtime samples
        np.testing.assert_array_equal(
            getattr(loaded, name).astype(np.float32), getattr(fitted, name).astype(np.float32)
        )
    assert max(len(number) for number in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text)) <= 16
    z_drawn = loaded.sample(None, rng.standard_normal((4000, 3)).astype(np.float32), rng.random(4000), 1.0)
    assert z_drawn.dtype == np.float32
    np.testing.assert_allclose(np.mean(z_drawn[:, 0] > 0), 0.5, atol=0.03)  # both modes drawn
    np.testing.assert_allclose(np.abs(z_drawn).mean(), 3.0, atol=0.1)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.r_[[0] * 40, 1], "label 1 has 1 training digits; a 3-"),
        (np.zeros(41, int), "label 1 has 0 training digits"),
    ],
)
def test_a_label_with_fewer_digits_than_components_is_refused(rng, labels, message):
    pytest.importorskip("vae_export", reason="the lite install has no vae_export")
    from vae_export.prior import fit_prior

    with pytest.raises(VaeDigitsError, match=message):
        fit_prior(rng.standard_normal((41, 2)), labels, num_classes=2, components=3)


def document(latent_dim=2, labels=("a", "b"), weights=(0.25, 0.75), scale=1.0):
    mixture = {
        "weights": list(weights),
        "means": [[float(i)] * latent_dim for i in range(len(weights))],
        "cholesky": [(np.eye(latent_dim) * scale).tolist()] * len(weights),
    }
    return {
        "format": "vae-digits-prior",
        "format_version": 1,
        "kind": "gmm",
        "latent_dim": latent_dim,
        "labels": list(labels),
        "mixtures": [mixture] * max(len(labels), 1),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "not a vae-digits-prior version 1 file"),
        (lambda d: d.update(latent_dim=3), "of latent_dim 2, as the bundle"),
        (lambda d: d.update(labels=["a"]), "labels differ from the bundle's"),
        (lambda d: d["mixtures"].pop(), "must hold 2 mixtures"),
        (lambda d: d["mixtures"][0].update(weights=[0.5, 0.6]), "weights must be >= 0 and sum to 1"),
        (lambda d: d["mixtures"][0].update(weights=[0.5]), "same number of components"),
        (lambda d: d["mixtures"][0].update(means=[[0, float("nan")], [1, 1]]), "finite numbers of shape"),
        (lambda d: d["mixtures"][0].update(cholesky=[[[1, 1], [0, 1]]] * 2), "lower-triangular"),
        (lambda d: d["mixtures"][0].update(cholesky=[[[0, 0], [0, 1]]] * 2), "positive diagonal"),
        (lambda d: d["mixtures"][0].update(means="x"), "numbers of shape"),
        (lambda d: d["mixtures"][0].update(means=[[10**400, 0], [1, 1]]), "numbers of shape"),
        (lambda d: d.update(mixtures=[{"weights": [1.0] * 65}] * 2), "1-64"),
    ],
)
def test_malformed_priors_are_refused(change, message):
    data = json.loads(json.dumps(document()))
    change(data)
    with pytest.raises(BundleError, match=message):
        Prior.from_dict(data, 2, ("a", "b"))


def test_a_prior_too_large_to_build_is_refused_before_building_it():
    data = document(latent_dim=256, labels=tuple(str(i) for i in range(10)), weights=(1.0,))
    data["mixtures"] = [{"weights": [1 / 64] * 64, "means": "not read", "cholesky": "not read"}] * 10
    with pytest.raises(BundleError, match="is too large"):
        Prior.from_dict(data, 256, tuple(str(i) for i in range(10)))


def test_an_unreadable_or_oversized_prior_file_is_refused(tmp_path):
    path = tmp_path / "prior.json"
    path.write_bytes(b"\xff{")
    with pytest.raises(BundleError, match="prior.json is not readable JSON"):
        Prior.load(path, 2, ("a", "b"))
    path.write_bytes(b" " * (8 << 20) + b"{}")
    with pytest.raises(BundleError, match="prior.json is larger than 8388608 bytes"):
        Prior.load(path, 2, ("a", "b"))


@pytest.mark.numeric
def test_sampling_follows_the_documented_stream(rng):
    prior = Prior.from_dict(document(scale=0.5), 2, ("a", "b"))
    eps = rng.standard_normal((20000, 2)).astype(np.float32)
    u = rng.random(20000)
    labels = np.repeat([0, 1], 10000)
    z = prior.sample(labels, eps, u, temperature=2.0)
    chosen = (u >= 0.25).astype(int)  # component 1 when u >= the first weight
    np.testing.assert_allclose(z, chosen[:, None] + 2.0 * 0.5 * eps, rtol=1e-6, atol=1e-6)


@pytest.mark.numeric
def test_a_standard_normal_prior_draws_what_no_prior_draws():
    """One component N(0, I): the same digits as a bundle without a prior, for the same seed."""
    g = Generator.load("cvae")
    labels = tuple(g.manifest.labels)
    identity = Prior.from_dict(document(labels=labels, weights=(1.0,)), 2, labels)
    identity = Prior(identity.weights, np.zeros_like(identity.means), identity.cholesky)
    with_prior = Generator(**{**g.__dict__, "prior": identity})
    np.testing.assert_array_equal(
        with_prior.generate([3, 8], count=5, seed=4), g.generate([3, 8], count=5, seed=4)
    )


@pytest.fixture(scope="module")
def prior_bundle(cvae_run, tmp_path_factory):
    from vae_export.onnx import OnnxFormat
    from vae_export.pipeline import export

    out = tmp_path_factory.mktemp("prior") / "bundle"
    export(cvae_run, out, [OnnxFormat()], data=str(DATA), prior=3, temperature=0.8)
    return out


@pytest.mark.numeric
@needs_tensorflow
def test_export_writes_a_checksummed_prior_that_generate_samples(prior_bundle, mnist):
    manifest = json.loads((prior_bundle / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["role"] == "prior")
    assert entry["path"] == "prior.json" and entry["format"] == "json"
    assert entry["sha256"] == sha256_hex((prior_bundle / "prior.json").read_bytes())
    assert manifest["default_temperature"] == 0.8
    g = Generator.load(prior_bundle)
    assert g.prior.weights.shape == (10, 3) and g.prior.means.shape == (10, 3, 2)
    digits = g.generate([1, 7], count=4, seed=5)
    choosers, normals = stream.draws(5, 8, 2)  # the portable stream's draws for seed 5
    z = g.prior.sample(np.repeat([1, 7], 4), normals, choosers, 0.8)
    np.testing.assert_array_equal(digits, np.rint(g.decode(z, np.repeat([1, 7], 4)) * 255).astype(np.uint8))
    # the mixture sits where the encoder puts each label's training digits
    z_mean, _ = g.encode(mnist.x_train, mnist.y_train)
    for label in (1, 7):
        fitted_mean = (g.prior.weights[label, :, None] * g.prior.means[label]).sum(axis=0)
        np.testing.assert_allclose(fitted_mean, z_mean[mnist.y_train == label].mean(axis=0), atol=0.05)


@needs_tensorflow
def test_a_tampered_or_lying_prior_is_refused(prior_bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(prior_bundle, copy)
    (copy / "prior.json").write_text((copy / "prior.json").read_text().replace("0.", "1.", 1))
    with pytest.raises(BundleError, match="prior.json does not match its manifest checksum"):
        Generator.load(copy)
    data = json.loads((prior_bundle / "prior.json").read_text())
    data["latent_dim"] = 3
    text = json.dumps(data)
    (copy / "prior.json").write_text(text)
    manifest = json.loads((copy / "manifest.json").read_text())
    next(f for f in manifest["files"] if f["role"] == "prior").update(
        sha256=sha256_hex(text.encode()), size=len(text)
    )
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="of latent_dim 2, as the bundle"):
        Generator.load(copy)
