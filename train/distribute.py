"""Where a run trains: a tf.distribute strategy chosen by `vae-train --strategy`, and what is recorded.

- default: one device (the GPU when there is one, else the CPU);
- mirrored: one replica per GPU (per logical CPU without GPUs), gradients summed across them;
- multi-worker: one process per machine (or per worker on one host), described by TF_CONFIG; every
  worker's replicas are mirrored. The chief alone holds the run: it writes the run directory, and the
  other workers take its settings, epoch and weights when they start, so a worker restarted or replaced
  after a crash needs nothing of its own;
- auto: mirrored over two or more GPUs, else default.

--batch-size is the global batch: each replica gets an equal share of it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from vae_runtime.errors import VaeDigitsError

STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
NOTE_BYTES = 8192  # room for one worker's note in agree()


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name`; created before any other TensorFlow op of the run.

    Example:
        >>> make_strategy("mirrored").num_replicas_in_sync  # two GPUs
        2
    """
    if name not in STRATEGIES:
        raise VaeDigitsError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    if name == "multi-worker":
        _tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if name == "mirrored" or (name == "auto" and len(gpus) >= 2):
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(gpus or cpus)
    return tf.distribute.get_strategy()


def describe(strategy: tf.distribute.Strategy, name: str, global_batch: int) -> dict:
    """What config.json records and the CLI prints: the strategy, replicas, batch split and devices.

    Example:
        >>> describe(make_strategy("default"), "default", 128)["devices"]
        ['CPU:0']
    """
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
    return strategy.extended.should_checkpoint


def is_other_worker() -> bool:
    """Whether TF_CONFIG makes this process a worker other than the chief (before any strategy exists).

    The chief is the "chief" task, else worker 0, as in TensorFlow.
    """
    try:
        config = _tf_config()
    except VaeDigitsError:  # no cluster: no worker of one
        return False
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") != "worker":  # the chief, or no worker at all
        return False
    return task.get("index") != 0 or "chief" in config["cluster"]


def agree(strategy: tf.distribute.Strategy, note: dict) -> list[dict]:
    """Every worker's `note` (JSON) on every worker, in worker order: how workers check each other
    before training, since a worker that stops alone leaves the others waiting forever. Without
    several workers: [note].

    Example:
        >>> agree(make_strategy("default"), {"chief": True})
        [{'chief': True}]
    """
    if not _several_workers(strategy):
        return [note]
    encoded = json.dumps(note).encode()
    if len(encoded) > NOTE_BYTES:
        raise VaeDigitsError(f"a worker's note to the others is over {NOTE_BYTES} bytes")
    row = np.zeros((1, NOTE_BYTES), np.int32)
    row[0, : len(encoded)] = np.frombuffer(encoded, np.uint8)

    @tf.function
    def gather():
        per_replica = strategy.run(lambda: tf.constant(row))
        return strategy.gather(per_replica, axis=0)  # a row per replica, a worker's replicas together

    local_replicas = len(strategy.extended.worker_devices)
    table = gather().numpy()[::local_replicas].astype(np.uint8)
    return [json.loads(bytes(notes).rstrip(b"\0")) for notes in table]


def take_chiefs_state(strategy: tf.distribute.Strategy, variables: list) -> None:
    """Set `variables` on every worker to the chief's values (a broadcast: the others add zeros).

    Example:
        >>> take_chiefs_state(strategy, model.variables + model.optimizer.variables)
    """
    if not _several_workers(strategy):
        return

    groups: dict[str, list] = {}  # one reduction per dtype: a batched reduction takes one dtype
    for variable in variables:
        groups.setdefault(variable.dtype, []).append(variable)

    def chiefs():
        context = tf.distribute.get_replica_context()
        source = context.replica_id_in_sync_group == 0
        return {
            dtype: context.all_reduce("SUM", [tf.where(source, v.value, tf.zeros_like(v)) for v in group])
            for dtype, group in groups.items()
        }

    @tf.function
    def broadcast():
        values = strategy.run(chiefs)
        for dtype, group in groups.items():
            for variable, value in zip(group, values[dtype], strict=True):
                variable.assign(strategy.experimental_local_results(value)[0])

    broadcast()


def _several_workers(strategy: tf.distribute.Strategy) -> bool:
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)


def _tf_config() -> dict:
    try:
        config = json.loads(os.environ["TF_CONFIG"])
        cluster = config["cluster"]
    except (KeyError, ValueError, TypeError):
        raise VaeDigitsError(
            "--strategy multi-worker needs TF_CONFIG: a JSON cluster and task (see README, "
            "'Training on several devices or machines')"
        ) from None
    if not isinstance(cluster, dict) or not cluster:
        raise VaeDigitsError("TF_CONFIG's cluster is empty")
    return config
