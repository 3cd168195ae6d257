"""The quality / cost table of bundles: one row per bundle (and temperature), as README's frontier table.

    python bench/frontier.py runtime/bundles/cvae bench/bundles/cvae-hq bundles/x1 \
        --data ../shared/data/mnist.npz [--temperature 0.6 --temperature 0.7] [--json out.json]

Per bundle: the decoder's MFLOP per digit counted from its ONNX graph (bench/flops.py), the parameters of
encoder and decoder, the bytes of every file the bundle ships, and `vae-eval --json`'s numbers: accuracy
(overall and worst label) of an independent MNIST classifier, Frechet distance in its feature space,
in-label diversity relative to real digits', and the test negative ELBO.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).parent))
from flops import graph_mflop


def parameters(path: Path) -> int:
    """Weights in an ONNX file (its initializers' elements)."""
    return sum(int(onnx.numpy_helper.to_array(i).size) for i in onnx.load(str(path)).graph.initializer)


def evaluate(bundle: Path, data: str, temperature: float | None) -> dict:
    command = ["vae-eval", str(bundle), "--data", data, "--json"]
    if temperature is not None:
        command += ["--temperature", str(temperature)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def row(bundle: Path, data: str, temperature: float | None) -> dict:
    report = evaluate(bundle, data, temperature)
    quality = report["generation"]
    return {
        "bundle": bundle.name,
        "temperature": quality["temperature"],
        "decoder_mflop": round(graph_mflop(bundle / "decoder.onnx"), 2),
        "decoder_parameters": parameters(bundle / "decoder.onnx"),
        "encoder_parameters": parameters(bundle / "encoder.onnx"),
        "bundle_bytes": sum(f.stat().st_size for f in bundle.iterdir() if f.is_file()),
        "accuracy": quality["accuracy"],
        "worst_label_accuracy": quality["worst_label_accuracy"],
        "frechet_distance": quality["frechet_distance"],
        "diversity_ratio": quality["diversity_ratio"],
        "test_negative_elbo": report["elbo_loss"],
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| bundle | T | decoder MFLOP | parameters (enc + dec) | bundle MB | accuracy | worst label "
        "| Fréchet distance | diversity | test -ELBO |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['bundle']} | {r['temperature']:g} | {r['decoder_mflop']:.1f} "
            f"| {r['encoder_parameters'] / 1e3:.0f}k + {r['decoder_parameters'] / 1e3:.0f}k "
            f"| {r['bundle_bytes'] / 1e6:.2f} | {100 * r['accuracy']:.2f} % "
            f"| {100 * r['worst_label_accuracy']:.1f} % | {r['frechet_distance']:.2f} "
            f"| {100 * r['diversity_ratio']:.1f} % | {r['test_negative_elbo']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--data", required=True, help="MNIST npz (the test split is used)")
    parser.add_argument(
        "--temperature", type=float, action="append", help="repeatable (default: the bundle's)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = [row(b, args.data, t) for b in args.bundles for t in (args.temperature or [None])]
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
