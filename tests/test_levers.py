"""The quality levers of vae-train (upsampling decoder, sigma-VAE, cosine schedule, KL warm-up): a real run
with all of them, recorded, resumable, exported to ONNX and TFLite within the parity tolerance."""

import json

import numpy as np
import pytest

from conftest import DATA, HAS_LITERT, needs_tensorflow, run_cli

pytestmark = needs_tensorflow

LEVERS = {"decoder": "upsample", "likelihood": "gaussian", "lr_schedule": "cosine", "kl_warmup": 1}


@pytest.fixture(scope="module")
def lever_run(tmp_path_factory):
    from vae_train.run import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "levers"
    config = TrainConfig(epochs=2, batch_size=32, latent_dim=4, data=str(DATA), **LEVERS)
    rows = []
    train(config, out, report=rows.append)
    return out, rows


def test_the_run_records_its_levers_and_its_gaussian_loss_falls(lever_run):
    out, rows = lever_run
    record = json.loads((out / "config.json").read_text())
    assert {name: record["config"][name] for name in LEVERS} == LEVERS
    assert record["architecture"]["decoder"] == "upsample"
    # the first epoch's KL weight rose from 0: the second, at full weight, still lowers the loss
    assert rows[1]["val_reconstruction_loss"] < rows[0]["val_reconstruction_loss"]


def test_the_cosine_schedule_decays_to_its_floor_over_the_run(lever_run):
    import keras

    from vae_train.config import COSINE_FLOOR

    out, _ = lever_run
    optimizer = keras.models.load_model(out / "model.keras").optimizer  # reloaded with its schedule
    assert int(optimizer.iterations) == 2 * int(np.ceil(len(np.load(DATA)["x_train"]) / 32))
    assert float(optimizer.learning_rate) == pytest.approx(1e-3 * COSINE_FLOOR, rel=1e-3)  # the last step


def test_the_run_exports_to_onnx_and_tflite_within_parity(lever_run, tmp_path):
    out, _ = lever_run
    bundle = tmp_path / "bundle"
    formats = "all" if HAS_LITERT else "onnx"
    result = run_cli(
        "vae-export", formats, str(out), "--out", str(bundle), "--data", str(DATA), "--prior", "2"
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    checked = [f for f in manifest["files"] if f.get("parity", {}).get("reference") == "keras"]
    expected = {"decoder.onnx", "encoder.onnx"} | (
        {"decoder.tflite", "encoder.tflite"} if HAS_LITERT else set()
    )
    assert {f["path"] for f in checked} == expected
    for entry in checked:
        assert 0 <= entry["parity"]["max_abs_diff"] <= entry["parity"]["atol"] == 1e-4
    # the upsampling's Resize nodes in coordinates every runtime supports: no deprecation warning on load
    import onnx

    resizes = [node for node in onnx.load(bundle / "decoder.onnx").graph.node if node.op_type == "Resize"]
    assert len(resizes) == 2
    for node in resizes:
        mode = next(a.s for a in node.attribute if a.name == "coordinate_transformation_mode")
        assert mode == b"asymmetric"
    generated = run_cli(
        "vae-generate", "--bundle", str(bundle), "--count", "2", "--out", str(tmp_path / "d.png")
    )
    assert generated.returncode == 0 and generated.stderr == "", generated.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--decoder", "deconv"], "'deconv' is not one of 'transposed', 'upsample'"),
        (["--likelihood", "laplace"], "'laplace' is not one of 'bernoulli', 'gaussian'"),
        (["--lr-schedule", "step"], "'step' is not one of 'constant', 'cosine'"),
        (["--kl-warmup", "-1"], "--kl-warmup"),
        (["--epochs", "2", "--kl-warmup", "3"], "--kl-warmup must be an integer in 0-EPOCHS"),
    ],
)
def test_bad_lever_settings_are_one_line(tmp_path, args, message):
    out = tmp_path / "never"
    result = run_cli("vae-train", *args, "--data", str(DATA), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()
