"""`vae-eval`: the ELBO math by hand, and agreement with training's validation losses."""

import json
import math

import numpy as np
import pytest

from conftest import DATA, needs_tensorflow, run_cli
from vae_runtime.bundle import embedded_bundle, read_manifest
from vae_runtime.generator import Generator
from vae_runtime.tools.evaluate import bce_sum, elbo_terms, kl_divergence


def test_bce_by_hand():
    targets = np.zeros((1, 28, 28))
    outputs = np.full((1, 28, 28), 0.5)
    targets[0, 0, :2] = [1.0, 0.25]
    outputs[0, 0, :2] = [0.9, 0.0]  # 0.0 is clipped to 1e-7, as Keras does
    expected = 782 * math.log(2) - math.log(0.9) - 0.25 * math.log(1e-7) - 0.75 * math.log(1 - 1e-7)
    assert bce_sum(targets, outputs)[0] == pytest.approx(expected, rel=1e-9)


def test_kl_by_hand():
    z_mean = np.array([[0.0, 0.0], [1.0, -2.0]])
    z_log_var = np.array([[0.0, 0.0], [math.log(4.0), 0.0]])
    # KL(N(m, s^2) || N(0, 1)) = 0.5 (s^2 + m^2 - 1 - log s^2)
    second = 0.5 * (4 + 1 - 1 - math.log(4)) + 0.5 * (1 + 4 - 1 - 0)
    np.testing.assert_allclose(kl_divergence(z_mean, z_log_var), [0.0, second], rtol=1e-12)


@needs_tensorflow
def test_runtime_elbo_agrees_with_keras_validation(cvae_run, cvae_bundle, mnist):
    record = json.loads((cvae_run / "config.json").read_text())
    terms = elbo_terms(Generator.load(cvae_bundle), mnist.x_test, mnist.y_test, seed=0)
    validation = record["summary"]["validation"]
    assert terms["kl_loss"] == pytest.approx(validation["kl_loss"], abs=0.05)
    assert terms["total_loss"] == pytest.approx(validation["total_loss"], abs=1.0)


def test_cli_json_and_table():
    result = run_cli("vae-eval", "--data", str(DATA), "--json")  # the default bundle
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["digits"] == 400 and report["kind"] == "cvae"
    beta = read_manifest(embedded_bundle()).training["config"]["beta"]
    assert report["total_loss"] == pytest.approx(report["reconstruction_loss"] + beta * report["kl_loss"])
    table = run_cli("vae-eval", "--data", str(DATA))
    assert "total_loss" in table.stdout and "400 test digits" in table.stdout


def test_cli_missing_data_file(tmp_path):
    result = run_cli("vae-eval", "--data", str(tmp_path / "missing.npz"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_frechet_distance_by_hand(rng):
    from vae_runtime.tools.evaluate import frechet_distance

    a = rng.standard_normal((20000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # independent Gaussians: |m1 - m2|^2 + sum (s1 - s2)^2 per dimension
    b = a * np.array([2.0, 1.0, 0.5]) + np.array([1.0, 0.0, -2.0])
    expected = (1 + 0 + 4) + ((2 - 1) ** 2 + 0 + (0.5 - 1) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=5e-3)  # sampling error only


def test_mean_pairwise_distance_by_hand():
    from vae_runtime.tools.evaluate import mean_pairwise_distance

    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])
    assert mean_pairwise_distance(points) == pytest.approx((5 + 4 + 3) / 3)


def test_generation_quality_of_the_embedded_cvae(mnist):
    from vae_runtime.tools.evaluate import Judge, find_classifier, generation_quality

    g = Generator.load()  # the ONNX classifier where onnxruntime is installed, else its TFLite twin
    quality = generation_quality(
        g, Judge(find_classifier(g.bundle)), mnist.x_test, mnist.y_test, per_label=50, seed=0
    )
    assert set(quality["accuracy_by_label"]) == set(g.manifest.labels)
    assert quality["accuracy"] == pytest.approx(np.mean(list(quality["accuracy_by_label"].values())))
    assert quality["frechet_distance"] > 0 and quality["diversity_real"] > 0


def test_missing_classifier_is_a_clear_error(tmp_path):
    result = run_cli("vae-eval", "--data", str(DATA), "--classifier", str(tmp_path / "none.onnx"))
    assert result.returncode == 2 and "train one with `vae-train classifier`" in result.stderr


@needs_tensorflow
def test_vae_train_classifier_writes_a_working_onnx_judge(tmp_path, mnist):
    from vae_runtime.tools.evaluate import Judge

    out = tmp_path / "classifier"
    result = run_cli("vae-train", "classifier", "--data", str(DATA), "--out", str(out), "--epochs", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "classifier.json").read_text())
    features, predicted = Judge(out / "classifier.onnx")(mnist.x_test)
    assert features.shape == (400, 128)
    assert (predicted == mnist.y_test).mean() == pytest.approx(summary["test_accuracy"], abs=1e-3)
    assert summary["test_accuracy"] > 0.5  # two epochs on 1,200 digits: far above chance (0.1)


def test_eval_of_the_quality_bundle_uses_its_temperature_and_reports_the_elbo():
    result = run_cli("vae-eval", "cvae-16d", "--data", str(DATA), "--per-label", "20", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    manifest = read_manifest(embedded_bundle())
    assert report["generation"]["temperature"] == manifest.default_temperature < 1  # a fitted prior's
    assert report["elbo_loss"] == pytest.approx(report["reconstruction_loss"] + report["kl_loss"])
    beta = manifest.training["config"]["beta"]
    assert report["total_loss"] == pytest.approx(report["reconstruction_loss"] + beta * report["kl_loss"])
    assert report["data"]["name"] == "mnist_small.npz" and len(report["data"]["sha256"]) == 64
