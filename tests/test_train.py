"""`vae-train` runs: the run directory, resume after an interruption, and bad input."""

import json

import numpy as np
import pytest

from conftest import DATA, keras_weights, needs_tensorflow, run_cli

pytestmark = needs_tensorflow


def test_run_directory_holds_everything(cvae_run):
    files = {p.name for p in cvae_run.iterdir()}
    assert {
        "model.keras",
        "encoder.keras",
        "decoder.keras",
        "config.json",
        "history.csv",
        "loss_curves.png",
        "checkpoints",
    } <= files
    record = json.loads((cvae_run / "config.json").read_text())
    assert record["status"] == "complete"
    assert record["config"]["model"] == "cvae" and record["config"]["latent_dim"] == 2
    import hashlib

    expected = {"name": "mnist_small.npz", "size": DATA.stat().st_size}
    expected |= {"sha256": hashlib.sha256(DATA.read_bytes()).hexdigest(), "train": 1200, "test": 400}
    assert record["data"] == expected
    assert record["config"]["data"] == "mnist_small.npz"
    assert str(DATA.parent) not in (cvae_run / "config.json").read_text()  # no path of this machine
    assert {"tensorflow", "keras", "numpy"} <= set(record["versions"])
    summary = record["summary"]
    assert summary["epochs"] == 2
    validation = summary["validation"]
    assert validation["total_loss"] == pytest.approx(
        validation["reconstruction_loss"] + validation["kl_loss"], rel=1e-4
    )
    assert 100 < validation["total_loss"] < 400
    assert (cvae_run / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_has_every_column_per_epoch(cvae_run):
    from vae_train.rundir import HISTORY_COLUMNS, read_history

    header = (cvae_run / "history.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == HISTORY_COLUMNS
    rows = read_history(cvae_run)
    assert [row["epoch"] for row in rows] == [1, 2]
    assert rows[1]["total_loss"] < rows[0]["total_loss"]
    assert all(row["seconds"] > 0 for row in rows)


class Interrupted(Exception):
    pass


def test_resume_continues_from_the_last_completed_epoch(tmp_path):
    from vae_train.run import TrainConfig, read_history, read_run, train

    config = TrainConfig(model="vae", epochs=3, batch_size=128, data=str(DATA), seed=1)
    out = tmp_path / "run"

    def crash_after_first(row):
        if row["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(config, out, report=crash_after_first)
    assert read_run(out)["status"] == "running"
    assert not (out / "model.keras").exists()  # an interrupted run never looks finished
    first = read_history(out)
    assert [row["epoch"] for row in first] == [1]

    epochs_run = []
    summary = train(config, out, resume=True, report=lambda row: epochs_run.append(row["epoch"]))
    assert epochs_run == [2, 3]
    history = read_history(out)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[0] == first[0]
    assert summary["epochs"] == 3 and read_run(out)["status"] == "complete"


def test_a_run_killed_mid_epoch_and_resumed_ends_with_the_uninterrupted_weights(tmp_path):
    """The same digits in the same order each epoch, the same noise, the optimizer's state: resuming
    changes nothing. Progress comes after every step."""
    from vae_train.run import TrainConfig, read_history, train

    config = TrainConfig(model="cvae", epochs=2, batch_size=256, data=str(DATA), seed=3)
    steps = []
    train(config, tmp_path / "straight", report=lambda row: None, progress=lambda *step: steps.append(step))
    assert steps == [(epoch, step, 5) for epoch in (1, 2) for step in range(1, 6)]  # 1,200 digits in 256s

    def crash_in_epoch_two(epoch, step, steps):
        if (epoch, step) == (2, 3):
            raise Interrupted

    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        train(config, resumed, report=lambda row: None, progress=crash_in_epoch_two)
    train(config, resumed, resume=True, report=lambda row: None)
    for row, same in zip(read_history(resumed), read_history(tmp_path / "straight"), strict=True):
        assert {**row, "seconds": 0} == {**same, "seconds": 0}
    for name in ("encoder", "decoder"):
        expected = keras_weights(tmp_path / "straight" / f"{name}.keras")
        for a, b in zip(keras_weights(resumed / f"{name}.keras"), expected, strict=True):
            np.testing.assert_array_equal(a, b)


def tiny_mnist(path):
    with np.load(DATA) as small:
        np.savez(path, **{key: small[key][:8] for key in small.files})
    return path


def test_mixed_precision_trains_in_float16_resumes_and_saves_float32_models(tmp_path, monkeypatch):
    """On a GPU in practice; here on the CPU, where float16 is slow: 8 digits, a batch of 8."""
    import keras

    from vae_train import run

    monkeypatch.setattr(run, "_has_gpu", lambda: True)
    out, data = tmp_path / "run", str(tiny_mnist(tmp_path / "tiny.npz"))
    config = run.TrainConfig(model="cvae", epochs=1, batch_size=8, data=data, mixed_precision=True)
    run.train(config, out, report=lambda row: None)
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    summary = run.train(run.resume_config(out, {"epochs": 2, "data": data}), out, resume=True, report=print)
    assert summary["epochs"] == 2 and np.isfinite(summary["validation"]["total_loss"])
    assert run.read_run(out)["config"]["mixed_precision"] is True
    checkpoint = keras.models.load_model(out / "checkpoints" / "epoch-0002.keras")
    assert isinstance(checkpoint.optimizer, keras.optimizers.LossScaleOptimizer)
    policies = {layer.name: layer.dtype_policy.name for layer in checkpoint.decoder.layers}
    assert policies["image"] == "float32" and "mixed_float16" in policies.values()
    decoder = keras.models.load_model(out / "decoder.keras")  # what vae-export reads
    assert {layer.dtype_policy.name for layer in decoder.layers} == {"float32"}
    z, label = np.zeros((1, 2), np.float32), np.eye(10, dtype=np.float32)[:1]
    np.testing.assert_allclose(
        np.asarray(decoder([z, label])), np.asarray(checkpoint.decoder([z, label])), atol=2e-3
    )  # the same weights; float16 maths differ in the third decimal


def test_mixed_precision_needs_a_gpu(tmp_path, monkeypatch):
    from vae_runtime.errors import VaeDigitsError
    from vae_train import run

    monkeypatch.setattr(run, "_has_gpu", lambda: False)
    config = run.TrainConfig(epochs=1, data=str(DATA), mixed_precision=True)
    with pytest.raises(VaeDigitsError, match="--mixed-precision needs a GPU"):
        run.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resume_needs_more_epochs(cvae_run):
    from vae_runtime.errors import VaeDigitsError
    from vae_train.run import resume_config, train

    config = resume_config(cvae_run, {"epochs": 2})
    with pytest.raises(VaeDigitsError, match="already has 2 epochs; pass a larger --epochs"):
        train(config, cvae_run, resume=True)


def test_resume_refuses_changed_hyperparameters(cvae_run):
    from vae_runtime.errors import VaeDigitsError
    from vae_train.run import resume_config

    with pytest.raises(VaeDigitsError, match="--latent-dim, --beta differ from run"):
        resume_config(cvae_run, {"latent_dim": 3, "beta": 2.0, "epochs": 5})
    with pytest.raises(VaeDigitsError, match="--mixed-precision differ from run"):
        resume_config(cvae_run, {"mixed_precision": True})
    changed = resume_config(cvae_run, {"epochs": 5, "strategy": "mirrored", "tensorboard": True})
    assert (changed.epochs, changed.strategy, changed.tensorboard, changed.latent_dim) == (
        5,
        "mirrored",
        True,
        2,
    )


def test_cli_trains_one_epoch(tmp_path):
    out = tmp_path / "cli-run"
    result = run_cli(
        "vae-train",
        "--model",
        "vae",
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--data",
        str(DATA),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "epoch   1/1" in result.stdout and "validation total" in result.stdout
    assert result.stderr == ""  # TensorFlow's start-up noise is silenced
    assert json.loads((out / "config.json").read_text())["status"] == "complete"


BAD_INPUTS = [
    (["--model", "gan"], "'gan' is not one of 'cvae', 'vae'"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "-1"], "--batch-size"),
    (["--latent-dim", "0"], "--latent-dim"),
    (["--latent-dim", "257"], "'--latent-dim': 257 is not between 1 and 256"),
    (["--filters", "2000", "64"], "'--filters': 2000 is not between 1 and 1024"),
    (["--dense-units", "5000"], "'--dense-units': 5000 is not between 1 and 4096"),
    (["--batch-size", "100000"], "'--batch-size': 100000 is not between 1 and 65536"),
    (["--data", "/no/such/mnist.npz"], "data path /no/such/mnist.npz does not exist"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_is_one_line(tmp_path, args, message):
    out = tmp_path / "never"
    result = run_cli("vae-train", *args, "--out", str(out))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"filters": (32, 1025)}, "--filters must be two integers in 1-1024"),
        ({"dense_units": 4097}, "--dense-units must be an integer in 1-4096"),
        ({"batch_size": 65_537}, "--batch-size must be an integer in 1-65536"),
    ],
)
def test_config_bounds_capacity_as_the_cli_does(settings, message):
    from vae_runtime.errors import VaeDigitsError
    from vae_train.run import TrainConfig

    with pytest.raises(VaeDigitsError, match=message):
        TrainConfig(**settings)
    TrainConfig(filters=(1024, 1024), dense_units=4096, batch_size=65_536, latent_dim=256)  # the bounds


def out_of_memory(kind: str) -> Exception:
    """What running out of memory raises: TensorFlow's error for a tensor, Python's for an array."""
    import tensorflow as tf

    if kind == "python":
        return MemoryError()
    return tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[65536,1024]")


@pytest.mark.parametrize(
    ("step", "kind", "message"),
    [
        (
            "build_model",
            "tensorflow",
            r"out of memory building the model: lower --filters \(32 64\), --dense-units \(16\) or "
            r"--latent-dim \(2\); .*api holds no trained epoch: remove it before starting again",
        ),
        (
            "_fit",
            "python",
            r"out of memory training: lower --batch-size \(32\), --filters \(32 64\) or --dense-units \(16\)",
        ),
    ],
)
def test_out_of_memory_names_the_options_to_lower(tmp_path, monkeypatch, capsys, step, kind, message):
    from vae_runtime.clikit.common import main
    from vae_train import cli, config, run
    from vae_train.memory import OutOfMemoryError

    def fails(*args, **kwargs):
        raise out_of_memory(kind)

    monkeypatch.setattr(config if step == "build_model" else run, step, fails)  # where each is looked up
    with pytest.raises(OutOfMemoryError, match=message):
        run.train(run.TrainConfig(epochs=1, batch_size=32, data=str(DATA)), tmp_path / "api")
    args = ["--epochs", "1", "--batch-size", "32", "--data", str(DATA), "--out", str(tmp_path / "cli")]
    with pytest.raises(SystemExit) as exited:
        main(cli.app, args)
    assert exited.value.code == 1  # good input, failed work
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert "error: out of memory" in error and "--filters (32 64)" in error


def test_malformed_and_misshapen_data(tmp_path):
    from vae_runtime.errors import DataError
    from vae_train.run import TrainConfig, train

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        train(TrainConfig(data=str(garbage), epochs=1), tmp_path / "a")
    flat = tmp_path / "flat.npz"
    np.savez(
        flat,
        x_train=np.zeros((4, 784), np.uint8),
        y_train=np.zeros(4, np.uint8),
        x_test=np.zeros((4, 784), np.uint8),
        y_test=np.zeros(4, np.uint8),
    )
    with pytest.raises(DataError, match=r"has shape \(4, 784\), expected \(N, 28, 28\)"):
        train(TrainConfig(data=str(flat), epochs=1), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_existing_out_that_is_not_a_run(tmp_path):
    from vae_runtime.errors import VaeDigitsError
    from vae_train.run import TrainConfig, resume_config, train

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(VaeDigitsError, match="already exists; pass --resume"):
        train(TrainConfig(data=str(DATA), epochs=1), tmp_path / "busy")
    with pytest.raises(VaeDigitsError, match="is not a vae-train run"):
        resume_config(tmp_path / "busy", {})
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_training_data_download_is_checked_against_its_sha256(tmp_path, monkeypatch):
    import io
    import urllib.request

    from vae_runtime import mnist
    from vae_runtime.errors import DataError
    from vae_train.data import load_mnist

    monkeypatch.setattr(mnist, "KERAS_CACHE", tmp_path / "mnist.npz")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: io.BytesIO(b"not mnist"))
    with pytest.raises(DataError, match=r"is damaged \(checksum mismatch\)"):
        load_mnist(None)
    assert not (tmp_path / "mnist.npz").exists()  # nothing damaged is kept


def test_run_killed_after_its_last_checkpoint_is_finished_by_resume(tmp_path):
    from vae_train.run import TrainConfig, read_history, read_run, train

    config = TrainConfig(model="vae", epochs=1, batch_size=256, data=str(DATA), seed=2)
    out = tmp_path / "run"

    def crash(row):
        raise Interrupted

    with pytest.raises(Interrupted):
        train(config, out, report=crash)
    assert read_run(out)["status"] == "running" and not (out / "decoder.keras").exists()
    epochs_run = []
    summary = train(config, out, resume=True, report=lambda row: epochs_run.append(row["epoch"]))
    assert epochs_run == [] and summary["epochs"] == 1
    assert (out / "decoder.keras").exists() and read_run(out)["status"] == "complete"
    assert len(read_history(out)) == 1


def test_resume_needs_the_same_data(tmp_path):
    from vae_runtime.errors import VaeDigitsError
    from vae_train.run import TrainConfig, resume_config, train

    out = tmp_path / "run"
    train(TrainConfig(model="vae", epochs=1, batch_size=256, data=str(DATA)), out, report=lambda row: None)
    with pytest.raises(
        VaeDigitsError, match=r"trained on mnist_small.npz \(sha256 [0-9a-f]{12}\.\.\.\); pass --data"
    ):
        train(resume_config(out, {"epochs": 2}), out, resume=True)
    other = tmp_path / "other.npz"
    with np.load(DATA) as small:
        np.savez(other, **{key: small[key][:300] for key in small.files})
    with pytest.raises(VaeDigitsError, match="is not the data this run was trained on"):
        train(resume_config(out, {"epochs": 2, "data": str(other)}), out, resume=True)
    summary = train(resume_config(out, {"epochs": 2, "data": str(DATA)}), out, resume=True, report=print)
    assert summary["epochs"] == 2
