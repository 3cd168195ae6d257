"""Where a run trains: a tf.distribute strategy chosen by `vae-train --strategy`, and what is recorded.

- default: one device (the GPU when there is one, else the CPU);
- mirrored: one replica per GPU (per logical CPU without GPUs), gradients summed across them;
- auto: mirrored over two or more GPUs, else default.

--batch-size is the global batch: each replica gets an equal share of it.
"""

from __future__ import annotations

import tensorflow as tf

from vae_runtime.errors import VaeDigitsError

STRATEGIES = ("auto", "default", "mirrored")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name`; created before any other TensorFlow op of the run."""
    if name not in STRATEGIES:
        raise VaeDigitsError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if name == "mirrored" or (name == "auto" and len(gpus) >= 2):
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(gpus or cpus)
    return tf.distribute.get_strategy()


def describe(strategy: tf.distribute.Strategy, name: str, global_batch: int) -> dict:
    """What config.json records and the CLI prints: the strategy, replicas, batch split and devices."""
    replicas = strategy.num_replicas_in_sync
    if strategy is tf.distribute.get_strategy():  # the default strategy: where TensorFlow places ops
        gpus = tf.config.list_logical_devices("GPU")
        placed = [(gpus or tf.config.list_logical_devices("CPU"))[0].name]
    else:
        placed = strategy.extended.worker_devices
    devices = [device.split("device:")[-1] for device in placed]
    return {
        "strategy": name if name != "auto" else ("mirrored" if replicas > 1 else "default"),
        "replicas": replicas,
        "per_replica_batch": -(-global_batch // replicas),
        "global_batch": global_batch,
        "devices": devices,
    }
