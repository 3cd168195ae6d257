"""Benchmark generation speed, cold start and training time-to-quality in one run.

    python bench/run.py [--data mnist.npz] [--bundle DIR] [--train-epochs 10] [--skip-training]
                        [--full-reference] [--json bench/results/latest.json]
                        [--compare DIR --compare DIR ... [--compare-only]]

1. Throughput (digits/s) at batch 1, 16 and 256 and single-digit latency (median, p99) for: the Keras
   decoder under tf.function (the baseline, when TensorFlow is installed), the Generator, and every
   decoder file of the bundle on one session. Rounds interleave the contenders so that machine noise
   hits all alike; each figure is the median over rounds. The fp32 ceiling comes from numpy's sgemm
   measured in the same run.
2. Cold start: median wall time of fresh processes.
3. Training (needs TensorFlow): see bench/training.py.
4. With --compare: the decoders of several bundles side by side (MFLOP counted from each ONNX graph,
   digits/s at batch 1 and 256 on onnxruntime and LiteRT fp32 and int8), interleaved in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vae_runtime.backends import OnnxModel, available, open_model
from vae_runtime.bundle import embedded_bundle, read_manifest
from vae_runtime.generator import Generator
from vae_runtime.machine import this_machine
from vae_runtime.manifest import Manifest

BATCHES = (1, 16, 256)
BASELINE = "keras tf.function (baseline)"
COMPARED_FILES = (("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "int8"))


def sgemm_gflops(size: int = 2048, repeats: int = 10) -> float:
    """What this machine's numpy sgemm does now, using every core."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    a @ a
    started = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def contenders(bundle: Path, keras_decoder: Path) -> dict[str, object]:
    """name -> a callable(feeds) running one batch."""
    manifest = read_manifest(bundle)
    found = {}
    if _has_tensorflow() and keras_decoder.is_file():
        found[BASELINE] = _keras_decoder(keras_decoder)
    else:
        print(f"no baseline: needs TensorFlow and {keras_decoder} (scripts/build_pretrained.sh)")
    for backend in ("auto", "onnx"):
        generator = Generator.load(bundle, backend=backend)
        found[f"Generator backend={backend}"] = lambda feeds, g=generator: g.decode(
            feeds["z"], feeds["label"].argmax(axis=1) if "label" in feeds else None
        )
    for entry in manifest.files:
        if entry.role != "decoder" or not available(entry.format):
            continue
        for threads in (0, 1) if entry.format == "onnx" else (1, 2):
            model = open_model(bundle / entry.path, entry.format, threads)
            found[f"{entry.format} {entry.precision}, {_threads(threads)}"] = model.run
    return found


def _threads(threads: int) -> str:
    return "default threads" if threads == 0 else f"{threads} thread{'s' * (threads > 1)}"


def single_digit(bundle: Path, count: int = 9000) -> dict[str, float]:
    """p50 latency (ms) of one digit: Generator.generate / one-row decode vs a bare 1-thread session.

    Every round times each contender once, in a shuffled order, so that noise and cache effects
    (a call after the heavy one runs with cold caches) hit all alike."""
    generator = Generator.load(bundle)
    decoder = read_manifest(bundle).find("decoder", "onnx")
    if decoder is None:
        raise SystemExit(f"{bundle} has no onnx decoder to time")
    bare = OnnxModel(bundle / decoder.path, threads=1)
    feeds = feeds_for(generator.manifest, 1, np.random.default_rng(0))
    label = 7 if generator.manifest.conditional else None
    seeds = iter(range(10**9))
    runs = {
        "bare onnxruntime session, 1 thread": lambda: bare.session.run(None, feeds),
        "Generator.generate(count=1, seed=s)": lambda: generator.generate(label, count=1, seed=next(seeds)),
        "Generator.decode(one row)": lambda: generator.decode(feeds["z"], label),
        # part of generate's cost: seeding, which fixes the digits of every seed (not a goal)
        "np.random.default_rng(s) alone": lambda: np.random.default_rng(next(seeds)),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    order, shuffle = list(runs.items()), random.Random(0).shuffle
    for _ in range(count):
        shuffle(order)
        for name, run in order:
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: float(np.median(values) * 1000) for name, values in times.items()}


def tflite_files(bundle: Path, seconds: float) -> list[dict]:
    """Per TFLite file: size, XNNPACK's share of the ops, digits/s at batch 1/16/256 on 1 and 2 threads."""
    if not available("tflite"):
        return []
    manifest = read_manifest(bundle)
    rows = []
    for entry in (e for e in manifest.files if e.format == "tflite"):
        rng = np.random.default_rng(0)
        delegated, total = xnnpack_share(bundle / entry.path)
        row = {"file": entry.path, "bytes": entry.size, "xnnpack_ops": f"{delegated}/{total}"}
        for threads in (1, 2):
            model = open_model(bundle / entry.path, "tflite", threads)
            for batch in BATCHES:
                feeds = _role_feeds(manifest, entry.role, batch, rng)
                row[f"batch {batch}, {_threads(threads)}"] = throughput(model.run, feeds, seconds)
        rows.append(row)
    return rows


def xnnpack_share(path: Path) -> tuple[int, int]:
    """(ops XNNPACK runs, all ops) in the file's first signature: the nodes between the XNNPACK node's
    inputs and outputs, found by walking back from its outputs."""
    from vae_runtime.backends import tflite_interpreter

    interpreter = tflite_interpreter().Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    graph = interpreter._interpreter  # node lists are not public API: the benchmark may need updating
    nodes = range(graph.NumNodes())
    delegates = [n for n in nodes if graph.NodeName(n) == "DELEGATE"]
    ops = [n for n in nodes if graph.NodeName(n) != "DELEGATE"]
    producer = {t: n for n in ops for t in graph.NodeOutputs(n)}
    covered = set()
    for delegate in delegates:
        boundary = set(graph.NodeInputs(delegate))
        frontier = [t for t in graph.NodeOutputs(delegate)]
        while frontier:
            tensor = frontier.pop()
            node = producer.get(tensor)
            if node is None or node in covered or tensor in boundary:
                continue
            covered.add(node)
            frontier += list(graph.NodeInputs(node))
    return len(covered), len(ops)


def _role_feeds(manifest, role: str, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if role == "decoder":
        return feeds_for(manifest, batch, rng)
    feeds = {"image": rng.random((batch, 28, 28, 1), dtype=np.float32)}
    if manifest.conditional:
        feeds["label"] = np.eye(manifest.num_classes, dtype=np.float32)[rng.integers(0, 10, batch)]
    return feeds


def _has_tensorflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def _keras_decoder(path: Path):
    """The run's Keras decoder under tf.function."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import vae_train.models  # noqa: F401  (registers the custom layers)

    decoder = keras.models.load_model(path)
    call = tf.function(lambda inputs: decoder(inputs, training=False), reduce_retracing=True)
    order = [i.name for i in decoder.inputs]
    return lambda feeds: {"image": call([feeds[name] for name in order]).numpy()}


def feeds_for(manifest, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds = {"z": rng.standard_normal((batch, manifest.latent_dim), dtype=np.float32)}
    if manifest.conditional:
        feeds["label"] = np.eye(manifest.num_classes, dtype=np.float32)[rng.integers(0, 10, batch)]
    return feeds


def throughput(run, feeds, seconds: float) -> float:
    run(feeds)
    batch = len(next(iter(feeds.values())))
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        run(feeds)
        calls += 1
    return calls * batch / elapsed


def latencies(run, feeds, count: int) -> list[float]:
    run(feeds)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - started)
    return times


def cold_start(repeats: int) -> dict[str, float]:
    """Median wall time of fresh processes: import vae_runtime, and vae-generate to a PNG."""
    out = Path(tempfile.mkdtemp()) / "x.png"
    commands = {
        "python -c 'import vae_runtime'": [sys.executable, "-c", "import vae_runtime"],
        "vae-generate --label 7 --count 16 --out x.png": [
            sys.executable,
            "-c",
            "import sys; sys.argv[0]='vae-generate'; from vae_runtime.cli.generate import run; run()",
            "--label",
            "7",
            "--count",
            "16",
            "--out",
            str(out),
            "--force",
        ],
        "python -c pass (interpreter alone)": [sys.executable, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=embedded_bundle("cvae"))
    parser.add_argument("--seconds", type=float, default=0.5, help="per contender, batch and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--keras-decoder",
        type=Path,
        default=Path("runs/pretrained-cvae/decoder.keras"),
        help="the baseline: the Keras decoder the bundle was exported from",
    )
    parser.add_argument("--json", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--data", help="MNIST for training [default: the Keras cache, downloaded if missing]")
    parser.add_argument("--train-epochs", type=int, default=10, help="vae-train's epochs at most")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument(
        "--compare", type=Path, action="append", help="a bundle whose decoders to compare (repeatable)"
    )
    parser.add_argument("--compare-only", action="store_true", help="with --compare: measure only that")
    parser.add_argument(
        "--full-reference", action="store_true", help="train the reference 10 epochs, store its loss, stop"
    )
    args = parser.parse_args()
    machine = this_machine()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    if args.full_reference:
        full_reference(args.data, machine, date)
        return
    if args.compare_only:
        print(f"{date}  {machine}")
        print_comparison(compare_bundles(args.compare or [], args.seconds, args.rounds))
        return

    manifest = read_manifest(args.bundle)
    runs = contenders(args.bundle, args.keras_decoder)
    rng = np.random.default_rng(0)
    feeds = {batch: feeds_for(manifest, batch, rng) for batch in BATCHES}
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in runs}
    for _ in range(args.rounds):
        for batch in BATCHES:
            for name, run in runs.items():  # interleaved: every contender once per round and batch
                samples[name].setdefault(f"batch {batch}", []).append(
                    throughput(run, feeds[batch], args.seconds)
                )
        for name, run in runs.items():
            samples[name].setdefault("latency", []).extend(latencies(run, feeds[1], 200))

    results = {}
    for name, figures in samples.items():
        lat = np.array(figures.pop("latency")) * 1000
        results[name] = {
            **{key: statistics.median(values) for key, values in figures.items()},
            "latency_ms_median": float(np.median(lat)),
            "latency_ms_p99": float(np.percentile(lat, 99)),
        }
    baseline = next((r for n, r in results.items() if "baseline" in n), None)
    gflops = sgemm_gflops()
    ceiling = gflops * 1000 / decoder_mflop(args.bundle, manifest)
    report: dict[str, Any] = {
        "date": date,
        "machine": machine,
        "bundle": str(args.bundle),
        "sgemm_gflops": round(gflops, 1),
        "fp32_ceiling_digits_per_s": round(ceiling),
        "generation": results,
        "cold_start_s": cold_start(repeats=5),
    }
    print(f"{date}  {machine}  sgemm {gflops:.0f} GFLOP/s -> fp32 ceiling {ceiling:,.0f} digits/s")
    header = f"{'contender':<34}" + "".join(f"{f'batch {b}/s':>13}" for b in BATCHES)
    print(header + f"{'lat ms p50':>12}{'p99':>8}{'vs base':>9}{'of ceiling':>11}")
    for name, r in results.items():
        ratio = r["batch 256"] / baseline["batch 256"] if baseline else float("nan")
        print(
            f"{name:<34}"
            + "".join(f"{r[f'batch {b}']:>13.0f}" for b in BATCHES)
            + f"{r['latency_ms_median']:>12.3f}{r['latency_ms_p99']:>8.3f}{ratio:>9.2f}"
            + f"{r['batch 256'] / ceiling:>11.1%}"
        )
    for name, seconds in report["cold_start_s"].items():
        print(f"cold start  {name:<48}{seconds:>7.3f} s")
    report["single_digit_ms_p50"] = single_digit(args.bundle)
    for name, ms in report["single_digit_ms_p50"].items():
        print(f"single digit p50  {name:<42}{ms:>7.3f} ms")
    report["tflite_files"] = tflite_files(args.bundle, args.seconds)
    print_tflite_files(report["tflite_files"])
    report["goals"] = goals(results, report["single_digit_ms_p50"])
    for goal in report["goals"]:
        verdict = "met" if goal["met"] else "MISSED"
        print(
            f"goal  {goal['what']:<72}{goal['ratio']:>6.2f} (goal {goal['sign']} {goal['goal']})  {verdict}"
        )
    if args.compare:
        report["compare"] = compare_bundles(args.compare, args.seconds, args.rounds)
        print_comparison(report["compare"])
    if not args.skip_training:
        report["training"] = training(args.data, args.train_epochs)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


def compare_bundles(bundles: list[Path], seconds: float, rounds: int) -> list[dict]:
    """Per bundle and decoder file of COMPARED_FILES: MFLOP and median digits/s at batch 1 and 256
    (onnxruntime on its default threads, LiteRT on 2), every file once per round and batch."""
    rows: list[dict[str, Any]] = []
    contenders: list[tuple[Callable[..., Any], Manifest, dict[int, list[float]]]] = []
    for bundle in bundles:
        manifest = read_manifest(bundle)
        mflop = decoder_mflop(bundle, manifest)
        for entry in manifest.files:
            if entry.role != "decoder" or (entry.format, entry.precision) not in COMPARED_FILES:
                continue
            if available(entry.format):
                model = open_model(bundle / entry.path, entry.format, 0 if entry.format == "onnx" else 2)
                rows.append(
                    {"bundle": bundle.name, "file": entry.path, "mflop": round(mflop, 2), "bytes": entry.size}
                )
                contenders.append((model.run, manifest, {1: [], 256: []}))
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        for batch in (1, 256):
            for run, manifest, figures in contenders:
                figures[batch].append(throughput(run, feeds_for(manifest, batch, rng), seconds))
    for row, (_, _, figures) in zip(rows, contenders, strict=True):
        row.update({f"batch {batch}": statistics.median(values) for batch, values in figures.items()})
    return rows


def decoder_mflop(bundle: Path, manifest: Manifest) -> float:
    """The bundle's decoder compute per digit, counted from its ONNX graph."""
    from flops import graph_mflop  # needs the onnx package, which a runtime-only install lacks

    entry = manifest.find("decoder", "onnx")
    if entry is None:
        raise SystemExit(f"{bundle} has no ONNX decoder to count the compute of")
    return graph_mflop(bundle / entry.path)


def print_comparison(rows: list[dict]) -> None:
    print(f"{'bundle':<16}{'decoder file':<24}{'MFLOP':>7}{'KiB':>6}{'batch 1/s':>12}{'batch 256/s':>13}")
    for row in rows:
        print(
            f"{row['bundle']:<16}{row['file']:<24}{row['mflop']:>7.1f}{row['bytes'] / 1024:>6.0f}"
            f"{row['batch 1']:>12.0f}{row['batch 256']:>13.0f}"
        )


def print_tflite_files(rows: list[dict]) -> None:
    if not rows:
        return
    columns = [key for key in rows[0] if key.startswith("batch")]
    print(
        f"{'TFLite file':<24}{'KiB':>6}{'XNNPACK ops':>13}"
        + "".join(f"{c.replace('batch ', 'b'):>16}" for c in columns)
    )
    for row in rows:
        print(
            f"{row['file']:<24}{row['bytes'] / 1024:>6.0f}{row['xnnpack_ops']:>13}"
            + "".join(f"{row[c]:>16.0f}" for c in columns)
        )


GOALS = [  # (what, numerator contender, denominator contender, goal, at least?)
    (
        "Generator (auto), batch 256 / one onnxruntime session, default threads",
        "Generator backend=auto",
        "onnx fp32, default threads",
        1.8,
        True,
    ),
    (
        "LiteRT fp32 decoder / onnxruntime, one thread each, batch 256",
        "tflite fp32, 1 thread",
        "onnx fp32, 1 thread",
        0.9,
        True,
    ),
    (
        "LiteRT fp32 decoder, 2 threads / 1 thread, batch 256",
        "tflite fp32, 2 threads",
        "tflite fp32, 1 thread",
        1.5,
        True,
    ),
]
SINGLE_GOALS = [
    ("single digit p50: Generator.generate / bare 1-thread session", "Generator.generate(count=1, seed=s)"),
    ("single digit p50: Generator.decode(one row) / bare 1-thread session", "Generator.decode(one row)"),
]


def goals(results: dict, single: dict) -> list[dict]:
    """The issue's targets as ratios of contenders measured in this same run."""
    found = []
    for what, top, bottom, goal, at_least in GOALS:
        if top in results and bottom in results:
            ratio = results[top]["batch 256"] / results[bottom]["batch 256"]
            met = ratio >= goal if at_least else ratio <= goal
            found.append(
                {"what": what, "ratio": ratio, "goal": goal, "sign": ">=" if at_least else "<=", "met": met}
            )
    bare = single["bare onnxruntime session, 1 thread"]
    for what, name in SINGLE_GOALS:
        ratio = single[name] / bare
        found.append({"what": what, "ratio": ratio, "goal": 1.15, "sign": "<=", "met": ratio <= 1.15})
    return found


def _mnist(data: str | None):
    from vae_runtime.mnist import load_mnist_anywhere

    return load_mnist_anywhere(Path(data) if data else None)


def full_reference(data: str | None, machine: str, date: str) -> None:
    import bench_training

    result = bench_training.run_reference(_mnist(data))
    bench_training.store_reference(result, machine, date)
    print(
        f"reference: {result['epochs']} epochs in {sum(result['epoch_seconds']):.1f} s, validation total "
        f"{result['validation']['total_loss']:.2f}; stored in {bench_training.RESULT_FILE}"
    )


def training(data: str | None, epochs: int) -> dict | None:
    import bench_training

    stored = bench_training.stored_reference()
    if not _has_tensorflow() or stored is None:
        print("no training benchmark: needs TensorFlow and a stored reference (run --full-reference once)")
        return None
    mnist = _mnist(data)
    target = stored["validation"]["total_loss"]
    result = bench_training.time_to_quality(mnist, mnist.source, target, epochs)
    print(
        f"training  target: the reference's 10-epoch validation total {target:.2f} ({stored['date']}); "
        f"reference 10 epochs ~{result['reference_seconds_to_target']:.0f} s "
        f"(epochs timed now: {', '.join(f'{t:.1f}' for t in result['reference_epoch_seconds'])} s)"
    )
    print(f"          vae-train validation by epoch {result['vae_train_val_by_epoch']}")
    print(f"          wall time at each epoch end  {result['vae_train_wall_by_epoch']} s")
    if result["vae_train_epoch_reaching_target"]:
        print(
            f"          reached at epoch {result['vae_train_epoch_reaching_target']} after "
            f"{result['vae_train_seconds_to_target']:.0f} s: {result['ratio']:.2f} of the reference's time"
        )
    else:
        spent = result["vae_train_wall_by_epoch"][-1] / result["reference_seconds_to_target"]
        print(f"          not reached in {epochs} epochs ({spent:.2f} of the reference's time)")
    return result


if __name__ == "__main__":
    main()
