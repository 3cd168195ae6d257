"""`vae-eval`: the ELBO math by hand, and agreement with training's validation losses."""

import json
import math

import numpy as np
import pytest

from conftest import DATA, needs_tensorflow, run_cli
from vae_runtime.evaluate import bce_sum, elbo_terms, kl_divergence
from vae_runtime.generator import Generator


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
    result = run_cli("vae-eval", "--data", str(DATA), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["digits"] == 400 and report["kind"] == "cvae"
    assert report["total_loss"] == pytest.approx(report["reconstruction_loss"] + report["kl_loss"])
    table = run_cli("vae-eval", "--data", str(DATA))
    assert "total_loss" in table.stdout and "400 test digits" in table.stdout


def test_cli_missing_data_file(tmp_path):
    result = run_cli("vae-eval", "--data", str(tmp_path / "missing.npz"))
    assert result.returncode == 2 and "does not exist" in result.stderr
