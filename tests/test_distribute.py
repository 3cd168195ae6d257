"""Training on two replicas (MirroredStrategy over two logical CPUs) against one device.

Each configuration runs in its own process: logical devices must be set before TensorFlow starts.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA, needs_tensorflow

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
from vae_train.data import make_dataset
from vae_train.distribute import make_strategy

models.Sampling.noise_scale = noise
strategy = make_strategy(strategy_name)
data = load_mnist_file({data!r})
keras.utils.set_random_seed(0)
with strategy.scope():
    model = models.build_model(models.Architecture(num_classes=10), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.built = True
    model.optimizer.build(model.trainable_variables)
# 500 digits in batches of 64: seven full steps and a last one of 52, split unevenly over replicas
train = make_dataset(data.x_train[:500], data.y_train[:500], conditional=True, batch_size=64)
logs = model.fit(train, epochs=1, verbose=0, shuffle=False).history
test = make_dataset(data.x_test, data.y_test, conditional=True, batch_size=64)
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


def test_two_replicas_equal_one_device_with_the_noise_held_equal(tmp_path):
    one, one_weights = train("default", 0.0, tmp_path)
    two, two_weights = train("mirrored", 0.0, tmp_path)
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for name in ("total_loss", "reconstruction_loss", "kl_loss"):
        assert two["train"][name] == pytest.approx(one["train"][name], rel=1e-5)
        assert two["val"][name] == pytest.approx(one["val"][name], rel=1e-5)
    for a, b in zip(one_weights, two_weights, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


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
import json, sys
from pathlib import Path
from vae_train import models
from vae_train.run import TrainConfig, train

models.Sampling.noise_scale = float(sys.argv[3])
config = TrainConfig(model="cvae", epochs=1, batch_size=64, data={data!r}, strategy=sys.argv[1], seed=0)
summary = train(config, Path(sys.argv[2]), report=lambda row: None)
print(json.dumps(summary))
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_workers(outs: list, noise: float) -> list[dict]:
    """Two multi-worker processes on loopback (one per --out, as on two machines); killed after 240 s."""
    import os

    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in outs]}
    workers = []
    for index, out in enumerate(outs):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="3")
        code = WORKER.format(data=str(DATA))
        argv = [sys.executable, "-c", code, "multi-worker", str(out), str(noise)]
        workers.append(
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    results = []
    for worker in workers:
        try:
            stdout, stderr = worker.communicate(timeout=240)  # a worker whose peer died waits forever
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise AssertionError("the workers did not finish in 240 s") from None
        assert worker.returncode == 0, stderr[-2000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def test_two_workers_equal_one_device_and_only_the_chief_writes(tmp_path):
    import subprocess as sp

    chief_out, other_out, single_out = tmp_path / "chief", tmp_path / "worker-1", tmp_path / "single"
    summaries = run_workers([chief_out, other_out], noise=0.0)
    code = WORKER.format(data=str(DATA))
    single = sp.run(
        [sys.executable, "-c", code, "default", str(single_out), "0.0"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    expected = json.loads(single.stdout.strip().splitlines()[-1])
    for summary in summaries:  # every worker saw the same, global numbers
        for split in ("train", "validation"):
            for name, value in expected[split].items():
                assert summary[split][name] == pytest.approx(value, rel=1e-5)
    record = json.loads((chief_out / "config.json").read_text())
    assert record["status"] == "complete" and record["setup"]["replicas"] == 2
    assert record["setup"]["strategy"] == "multi-worker"
    assert not other_out.exists()  # the non-chief wrote nothing
    import keras

    import vae_train.models  # noqa: F401  (registers the classes)

    chief_weights = keras.models.load_model(chief_out / "decoder.keras").get_weights()
    single_weights = keras.models.load_model(single_out / "decoder.keras").get_weights()
    for a, b in zip(chief_weights, single_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_multi_worker_needs_tf_config_and_refuses_resume(tmp_path, monkeypatch):
    from vae_runtime.errors import VaeDigitsError
    from vae_train.distribute import make_strategy
    from vae_train.run import TrainConfig, train

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(VaeDigitsError, match="--strategy multi-worker needs TF_CONFIG"):
        make_strategy("multi-worker")
    config = TrainConfig(epochs=1, data=str(DATA), strategy="multi-worker")
    with pytest.raises(VaeDigitsError, match="--resume with --strategy multi-worker is not supported yet"):
        train(config, tmp_path / "run", resume=True)


def test_the_private_keras_hook_still_exists():
    """VAE._maybe_symbolic_build overrides a private Keras method: an upgrade that drops it fails here."""
    import keras

    from vae_train.models import VAE

    assert hasattr(keras.Model, "_maybe_symbolic_build") and "_maybe_symbolic_build" in VAE.__dict__
