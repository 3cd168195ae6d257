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
