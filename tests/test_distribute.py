"""Training on two replicas (MirroredStrategy over two logical CPUs) against one device.

Each configuration runs in its own process: logical devices must be set before TensorFlow starts.
"""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA, cli_argv, keras_weights, needs_tensorflow
from vae_runtime.errors import VaeDigitsError
from vae_runtime.machine import free_port

pytestmark = needs_tensorflow

TRAIN = """
import json, sys
import numpy as np
import tensorflow as tf

strategy_name, noise, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from vae_runtime.mnist import load_mnist_file
from vae_train import models
from vae_train.data import batches, examples
from vae_train.distribute import make_strategy

models.Sampling.noise_scale = noise
strategy = make_strategy(strategy_name)
data = load_mnist_file({data!r})
keras.utils.set_random_seed(0)
with strategy.scope():
    model = models.build_model(models.Architecture(num_classes=10), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
# 500 digits in batches of 64: seven full steps and a last one of 52, split unevenly over replicas
train = batches(examples(data.x_train[:500], data.y_train[:500], True), 64)
logs = model.fit(train, epochs=1, verbose=0, shuffle=False).history
test = batches(examples(data.x_test, data.y_test, True), 64)
val = model.evaluate(test, verbose=0, return_dict=True)
np.savez(out, *[np.asarray(w) for w in model.get_weights()])
print(json.dumps({{"replicas": strategy.num_replicas_in_sync, "train": {{k: v[-1] for k, v in logs.items()}},
                  "val": val}}))
"""


def train(strategy: str, noise: float, tmp_path) -> tuple[dict, list[np.ndarray]]:
    out = tmp_path / f"{strategy}-{noise}.npz"
    code = TRAIN.format(data=str(DATA))
    result = subprocess.run(
        [sys.executable, "-c", code, strategy, str(noise), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with np.load(out) as weights:
        return json.loads(result.stdout.strip().splitlines()[-1]), [weights[k] for k in weights.files]


def assert_same_weights(actual: list[np.ndarray], expected: list[np.ndarray], tolerance: float) -> None:
    """Each tensor within `tolerance` of the expected one, relative to its norm. Not element by
    element: a sum split over replicas rounds differently (~1e-7), and Adam divides a weight's gradient
    by its running size, so where gradients are all near zero that rounding becomes a visible step, and
    training carries it on (seen over 57 steps: 5 of 37,632 weights 3e-4 apart, the tensor 7e-5 apart
    relative, all else ~1e-6; over 8 steps: everything within 5e-6)."""
    for a, b in zip(actual, expected, strict=True):
        distance = np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-6)
        assert distance <= tolerance, f"weights {a.shape} are {distance:.1e} apart (relative)"


def test_two_replicas_equal_one_device_with_the_noise_held_equal(tmp_path):
    one, one_weights = train("default", 0.0, tmp_path)
    two, two_weights = train("mirrored", 0.0, tmp_path)
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for name in ("total_loss", "reconstruction_loss", "kl_loss"):
        assert two["train"][name] == pytest.approx(one["train"][name], rel=1e-5)
        assert two["val"][name] == pytest.approx(one["val"][name], rel=1e-5)
    assert_same_weights(two_weights, one_weights, tolerance=2e-5)


def test_two_replicas_draw_their_own_noise_and_land_near_one_device(tmp_path):
    one, _ = train("default", 1.0, tmp_path)
    two, _ = train("mirrored", 1.0, tmp_path)
    assert two["val"]["total_loss"] == pytest.approx(one["val"]["total_loss"], rel=0.005)
    assert two["train"]["total_loss"] != one["train"]["total_loss"]  # not the same stream, split


SAMPLE = """
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from vae_train.distribute import make_strategy
from vae_train.models import Sampling

strategy = make_strategy("mirrored")
with strategy.scope():
    layer = Sampling(seed=5)
zeros = tf.zeros((4, 3))
per_replica = strategy.run(lambda: layer([zeros, zeros]))
draws = [np.asarray(t).tolist() for t in strategy.experimental_local_results(per_replica)]
single = np.asarray(Sampling(seed=5)([np.zeros((4, 3), np.float32)] * 2)).tolist()
print(json.dumps({"draws": draws, "single": single}))
"""


def test_every_replica_draws_its_own_noise_and_replica_zero_draws_the_single_device_noise():
    result = subprocess.run([sys.executable, "-c", SAMPLE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    first, second = (np.array(d) for d in found["draws"])
    assert not np.allclose(first, second)  # never copies of one stream
    np.testing.assert_array_equal(first, np.array(found["single"]))


def test_the_run_records_its_replicas_and_devices(tmp_path):
    from vae_train.run import TrainConfig, read_run, train

    out = tmp_path / "run"
    setups = []
    config = TrainConfig(model="vae", epochs=1, batch_size=256, data=str(DATA), strategy="default")
    train(config, out, report=lambda row: None, announce=setups.append)
    setup = read_run(out)["setup"]
    assert setup == setups[0]
    assert setup["strategy"] == "default" and setup["replicas"] == 1 and setup["global_batch"] == 256
    assert setup["per_replica_batch"] == 256 and setup["devices"][0].startswith(("CPU", "GPU"))


WORKER = """
import json, os, signal, sys
from pathlib import Path
from vae_train import models
from vae_train.run import TrainConfig, resume_config, train

options = json.loads(sys.argv[1])
models.Sampling.noise_scale = options["noise"]
out, given = Path(options["out"]), {"epochs": options["epochs"], "data": options["data"]}
if options["resume"]:
    config = resume_config(out, given)
else:
    config = TrainConfig(model="cvae", batch_size=64, strategy=options["strategy"], seed=0, **given)
steps = []


def progress(epoch, step, steps_per_epoch):
    steps.append(step)
    if [epoch, step] == options["crash_at"]:
        os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch, as when a machine dies


summary = train(config, out, resume=options["resume"], report=lambda row: None, progress=progress)
print(json.dumps({"summary": summary, "steps": len(steps)}))
"""
TIMEOUT = 240  # seconds; a worker whose peer is gone waits forever (and ignores SIGTERM)


def worker_argv(out, strategy="multi-worker", noise=1.0, epochs=1, resume=False, crash_at=None, data=DATA):
    options = {"out": str(out), "strategy": strategy, "noise": noise, "epochs": epochs, "resume": resume}
    options |= {"crash_at": crash_at, "data": str(data)}
    return [sys.executable, "-c", WORKER, json.dumps(options)]


def start_workers(argvs: list[list[str]]) -> list[subprocess.Popen]:
    """One multi-worker process per argv on loopback (each with its own --out, as on two machines)."""
    import os

    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in argvs]}
    workers = []
    for index, argv in enumerate(argvs):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="3")
        workers.append(
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    return workers


def finish(workers: list[subprocess.Popen], ok: bool = True) -> list[tuple[int, str, str]]:
    """Each worker's (exit code, stdout, stderr); all are killed if one overruns TIMEOUT."""
    ended = []
    for worker in workers:
        try:
            stdout, stderr = worker.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise AssertionError(f"the workers did not finish in {TIMEOUT} s") from None
        ended.append((worker.returncode, stdout, stderr))
        if ok:
            assert worker.returncode == 0, stderr[-2000:]
    return ended


HISTORY_LOSSES = [
    f"{split}{loss}_loss" for split in ("", "val_") for loss in ("total", "reconstruction", "kl")
]


def run_workers(*argvs: list[str]) -> list[dict]:
    """What each worker printed last, as JSON."""
    ended = finish(start_workers(list(argvs)))
    return [json.loads(stdout.strip().splitlines()[-1]) for _, stdout, _ in ended]


def weights(run) -> list[np.ndarray]:
    return [w for name in ("encoder", "decoder") for w in keras_weights(run / f"{name}.keras")]


def test_two_workers_equal_one_device_and_a_killed_worker_restarts_where_the_run_was(tmp_path, monkeypatch):
    """With the noise held equal, two workers train what one device trains. The chief is killed in
    epoch 2; the cluster restarts both workers with their commands, and they continue after epoch 1.
    Only the chief writes; the other worker holds no copy of the run (it takes the chief's)."""
    from vae_train import models
    from vae_train.run import TrainConfig, read_history, read_run, train

    monkeypatch.setattr(models.Sampling, "noise_scale", 0.0)
    single_out, chief_out, other_out = tmp_path / "single", tmp_path / "chief", tmp_path / "worker-1"
    config = TrainConfig(model="cvae", epochs=3, batch_size=64, data=str(DATA), strategy="default", seed=0)
    train(config, single_out, report=lambda row: None)

    commands = [worker_argv(chief_out, noise=0.0, epochs=3), worker_argv(other_out, noise=0.0, epochs=3)]
    chief, other = start_workers([worker_argv(chief_out, noise=0.0, epochs=3, crash_at=[2, 5]), commands[1]])
    [(code, _, _)] = finish([chief], ok=False)  # reads its output as it comes: a full pipe would block it
    assert code == -signal.SIGKILL
    other.kill()  # it waits for its peer forever; a cluster restarts every worker
    finish([other], ok=False)
    assert read_run(chief_out)["status"] == "running" and len(read_history(chief_out)) == 1

    restarted = run_workers(*commands)
    assert [worker["steps"] for worker in restarted] == [2 * 19, 0]  # epochs 2 and 3; progress on the chief
    expected = read_history(single_out)
    for worker in restarted:  # every worker saw the same, global numbers
        assert worker["summary"]["validation"]["total_loss"] == pytest.approx(
            expected[-1]["val_total_loss"], rel=1e-5
        )
    history = read_history(chief_out)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for row, same in zip(history, expected, strict=True):
        for loss in HISTORY_LOSSES:
            assert row[loss] == pytest.approx(same[loss], rel=1e-5)
    record = read_run(chief_out)
    assert record["status"] == "complete" and record["setup"]["replicas"] == 2
    assert record["setup"]["strategy"] == "multi-worker"
    assert not other_out.exists()  # the other worker wrote nothing, ever
    assert_same_weights(weights(chief_out), weights(single_out), tolerance=1e-3)


def test_two_workers_with_their_own_noise_land_near_one_device(tmp_path):
    """The mirrored test's workload (500 digits in batches of 64), as two workers."""
    from vae_train.run import TrainConfig, train

    data = tmp_path / "mnist-500.npz"
    with np.load(DATA) as digits:
        np.savez(data, **{key: digits[key][:500] if "train" in key else digits[key] for key in digits.files})
    config = TrainConfig(model="cvae", epochs=1, batch_size=64, data=str(data), strategy="default", seed=0)
    single = train(config, tmp_path / "single", report=lambda row: None)
    chief, other = run_workers(
        worker_argv(tmp_path / "chief", data=data), worker_argv(tmp_path / "other", data=data)
    )
    expected = single["validation"]["total_loss"]
    for worker in (chief, other):  # every worker saw the same, global numbers
        assert worker["summary"]["validation"]["total_loss"] == pytest.approx(expected, rel=0.005)
    assert chief["summary"]["train"]["total_loss"] != single["train"]["total_loss"]  # their own noise


SAMPLE_ON_A_WORKER = """
import json
import numpy as np
import tensorflow as tf
from vae_train.distribute import make_strategy
from vae_train.models import Sampling

strategy = make_strategy("multi-worker")
with strategy.scope():
    layer = Sampling(seed=5)
zeros = tf.zeros((4, 3))
draws = tf.function(lambda: strategy.run(lambda: layer([zeros, zeros])))()
print(json.dumps({"draws": np.asarray(strategy.experimental_local_results(draws)[0]).tolist()}))
"""


def test_every_worker_draws_its_own_noise_and_worker_zero_the_single_device_noise():
    from vae_train.models import Sampling

    argv = [sys.executable, "-c", SAMPLE_ON_A_WORKER]
    first, second = (np.array(worker["draws"]) for worker in run_workers(argv, argv))
    assert not np.allclose(first, second)  # the replica id counts over all workers
    single = np.asarray(Sampling(seed=5)([np.zeros((4, 3), np.float32)] * 2))
    np.testing.assert_array_equal(first, single)


def test_workers_given_different_data_all_stop(tmp_path):
    other_data = tmp_path / "other-mnist.npz"
    with np.load(DATA) as digits:
        np.savez(other_data, **{key: digits[key][:-1] for key in digits.files})
    workers = start_workers(
        [worker_argv(tmp_path / "chief"), worker_argv(tmp_path / "other", data=other_data)]
    )
    for code, _, stderr in finish(workers, ok=False):
        assert code != 0 and "is not the chief's" in stderr and "give every worker the same file" in stderr
    assert not [path for path in (tmp_path / "chief").rglob("*") if path.is_file()]


def test_two_workers_on_one_host_from_the_command_line(tmp_path):
    """README's commands: the same vae-train on each worker, with its TF_CONFIG; one writes the run."""
    argv = cli_argv("vae-train", "--strategy", "multi-worker", "--epochs", "1", "--data", str(DATA))
    argv += ["--out", str(tmp_path / "run")]
    workers = start_workers([argv, argv])
    (_, chief_out, chief_err), (_, other_out, other_err) = finish(workers)  # both exit 0
    assert chief_err == other_err == ""
    assert "into" in chief_out.splitlines()[0] and f"files in {tmp_path / 'run'}" in chief_out
    assert "the chief writes the run directory" in other_out and "files in" not in other_out
    assert "2 replica(s) x batch 64 = global batch 128" in chief_out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["status"] == "complete"


def test_a_worker_that_cannot_start_stops_the_others(tmp_path):
    chief_out = tmp_path / "chief"
    workers = start_workers(
        [worker_argv(chief_out), worker_argv(tmp_path / "other", data=tmp_path / "no-such-mnist.npz")]
    )
    (chief_code, _, chief_err), (other_code, _, other_err) = finish(workers, ok=False)
    assert chief_code != 0 and other_code != 0
    assert "no-such-mnist.npz does not exist" in other_err
    assert "another worker could not start: data path" in chief_err and "no-such-mnist.npz" in chief_err
    assert not [path for path in chief_out.rglob("*") if path.is_file()]  # the run never started


def test_resume_on_another_worker_takes_the_run_from_the_chief(tmp_path, monkeypatch):
    from vae_train.run import resume_config

    two = {"worker": ["10.0.0.1:1", "10.0.0.2:1"]}
    with_chief = two | {"chief": ["10.0.0.3:1"]}

    def resume_as(cluster: dict, task_type: str, index: int):
        task = {"type": task_type, "index": index}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        return resume_config(tmp_path / "not-here", {"epochs": 9, "data": str(DATA)})

    for other in ((two, "worker", 1), (with_chief, "worker", 0)):
        config = resume_as(*other)
        assert (config.strategy, config.epochs, config.data) == ("multi-worker", 9, str(DATA))
    for chief in ((two, "worker", 0), (with_chief, "chief", 0)):
        with pytest.raises(VaeDigitsError, match="is not a vae-train run"):  # the chief needs its run
            resume_as(*chief)


def test_multi_worker_needs_tf_config(monkeypatch):
    from vae_train.distribute import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(VaeDigitsError, match="--strategy multi-worker needs TF_CONFIG"):
        make_strategy("multi-worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(VaeDigitsError, match="TF_CONFIG's cluster is empty"):
        make_strategy("multi-worker")


def test_the_private_keras_hook_still_exists():
    """VAE._maybe_symbolic_build overrides a private Keras method: an upgrade that drops it fails here."""
    import keras

    from vae_train.models import VAE

    assert hasattr(keras.Model, "_maybe_symbolic_build") and "_maybe_symbolic_build" in VAE.__dict__
