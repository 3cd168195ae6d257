"""What distribution costs here: `vae-train` on one device, mirrored over two logical CPUs, and as two
workers on loopback, on the same data and settings, in one run.

    python bench/distribute.py [--data ../shared/data/mnist.npz] [--epochs 2] [--json FILE]

Each configuration trains in fresh processes (logical devices and TF_CONFIG must be set before
TensorFlow starts), one after the other. Reported per configuration: seconds per epoch (the run's
history.csv; the first epoch pays for tracing), the ratio of the mean epoch to one device's, and the
validation total loss after each epoch. On a machine without accelerators the replicas share the same
cores, so the ratios are the cost of the machinery, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from vae_runtime.machine import free_port

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"
WORKER = """
import json, sys
import tensorflow as tf

options = json.loads(sys.argv[1])
if options["logical_cpus"] > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    logical = [tf.config.LogicalDeviceConfiguration()] * options["logical_cpus"]
    tf.config.set_logical_device_configuration(cpu, logical)
from pathlib import Path
from vae_train.run import TrainConfig, train
from vae_train.rundir import read_history

config = TrainConfig(
    model="cvae", epochs=options["epochs"], data=options["data"], strategy=options["strategy"]
)
summary = train(config, Path(options["out"]), report=lambda row: None)
rows = read_history(Path(options["out"])) if options["chief"] else []
print(json.dumps({"epoch_seconds": [row["seconds"] for row in rows],
                  "val_total_loss": [row["val_total_loss"] for row in rows]}))
"""
CONFIGURATIONS = {  # name: (strategy, logical CPUs per process, processes)
    "one device": ("default", 1, 1),
    "mirrored, 2 logical CPUs": ("mirrored", 2, 1),
    "multi-worker, 2 workers on loopback": ("multi-worker", 1, 2),
}


def run(strategy: str, logical_cpus: int, processes: int, data: Path, epochs: int, scratch: Path) -> dict:
    """Train one configuration; the chief's (first process's) epoch seconds and validation losses."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(processes)]}
    workers = []
    for index in range(processes):
        options = {"strategy": strategy, "logical_cpus": logical_cpus, "epochs": epochs, "data": str(data)}
        options |= {"out": str(scratch / f"{strategy}-{index}"), "chief": index == 0}
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        if processes > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        argv = [sys.executable, "-c", WORKER, json.dumps(options)]
        workers.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True))
    outputs = [worker.communicate()[0] for worker in workers]
    if any(worker.returncode for worker in workers):
        raise SystemExit(f"{strategy}: a training process failed (exit {[w.returncode for w in workers]})")
    return json.loads(outputs[0].strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a Keras mnist.npz")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"--data {args.data} is not a file: give a Keras mnist.npz")

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (strategy, logical_cpus, processes) in CONFIGURATIONS.items():
            results[name] = run(strategy, logical_cpus, processes, args.data, args.epochs, Path(scratch))
            print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    baseline = statistics.mean(results["one device"]["epoch_seconds"])
    print(f"CVAE on {args.data.name}, {args.epochs} epochs, global batch 128, {os.cpu_count()} cores\n")
    print("| configuration | seconds per epoch | mean epoch / one device's | validation total by epoch |")
    print("|---|---|---|---|")
    for name, result in results.items():
        seconds = result["epoch_seconds"]
        ratio = statistics.mean(seconds) / baseline
        epochs = ", ".join(f"{s:.1f}" for s in seconds)
        losses = ", ".join(f"{loss:.2f}" for loss in result["val_total_loss"])
        print(f"| {name} | {epochs} | {ratio:.2f} | {losses} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
