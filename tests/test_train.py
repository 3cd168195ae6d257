"""`vae-train` runs: the run directory, resume after an interruption, and bad input."""

import json

import numpy as np
import pytest

from conftest import DATA, needs_tensorflow, run_cli

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
    from vae_train.run import HISTORY_COLUMNS, read_history

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


def test_download_failure_names_data_option(monkeypatch):
    import keras

    from vae_runtime.errors import DataError
    from vae_train.data import load_mnist

    def offline():
        raise Exception("URL fetch failure on https://example.invalid/mnist.npz: None")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataError, match="cannot download MNIST .* pass --data PATH"):
        load_mnist(None)


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
