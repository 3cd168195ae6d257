"""Where a run trains: a tf.distribute strategy chosen by `vae-train --strategy`, and what is recorded.

- default: one device (the GPU when there is one, else the CPU);
- mirrored: one replica per GPU (per logical CPU without GPUs), gradients summed across them;
- multi-worker: one process per machine (or per worker on one host), described by TF_CONFIG; every
  worker's replicas are mirrored, and the chief alone writes the run directory (restarting a killed
  worker is not supported yet);
- auto: mirrored over two or more GPUs, else default.

--batch-size is the global batch: each replica gets an equal share of it.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from vae_runtime.errors import VaeDigitsError

STRATEGIES = ("auto", "default", "mirrored", "multi-worker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name`; created before any other TensorFlow op of the run."""
    if name not in STRATEGIES:
        raise VaeDigitsError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    if name == "multi-worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
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


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory: always, but for a multi-worker non-chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _check_tf_config() -> None:
    try:
        cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
    except (KeyError, ValueError, TypeError):
        raise VaeDigitsError(
            "--strategy multi-worker needs TF_CONFIG: a JSON cluster and task (see README, "
            "'Training on several devices or machines')"
        ) from None
    if not isinstance(cluster, dict) or not cluster:
        raise VaeDigitsError("TF_CONFIG's cluster is empty")
