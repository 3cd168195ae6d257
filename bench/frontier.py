"""The quality / cost table of bundles: one row per bundle (and temperature), as README's frontier table.

    python bench/frontier.py runtime/bundles/cvae bench/bundles/cvae-hq bundles/x1 \
        --data ../shared/data/mnist.npz [--temperature 0.6 --temperature 0.7] [--real] [--json out.json]

Per bundle: the decoder's MFLOP per digit counted from its ONNX graph (bench/flops.py), the parameters of
encoder and decoder, the bytes of every file the bundle ships, and `vae-eval --json`'s numbers: accuracy
(overall and worst label) of an independent MNIST classifier, Frechet distance in its feature space,
in-label diversity relative to real digits', and the test negative ELBO. With --real, a first row for
the floor: real training digits scored the same way (`vae-eval --real`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import onnx

from vae_runtime.bundle import embedded_bundle
from vae_runtime.generator import Generator
from vae_runtime.mnist import Mnist, load_mnist_file
from vae_runtime.tools.evaluate import Judge, elbo_terms, find_classifier, generation_quality, real_quality

sys.path.insert(0, str(Path(__file__).parent))
from flops import graph_mflop


def parameters(path: Path) -> int:
    """Weights in an ONNX file (its initializers' elements)."""
    return sum(int(onnx.numpy_helper.to_array(i).size) for i in onnx.load(str(path)).graph.initializer)


def rows(bundle: Path, mnist: Mnist, temperatures: list[float | None]) -> list[dict]:
    """One row per temperature (None: the bundle's): what `vae-eval --json` reports, the test ELBO
    computed once for all of them."""
    g = Generator.load(bundle)
    judge = Judge(find_classifier(g.bundle))
    elbo = elbo_terms(g, mnist.x_test, mnist.y_test, seed=0)["elbo_loss"]
    cost = {
        "bundle": bundle.name,
        "decoder_mflop": round(graph_mflop(bundle / "decoder.onnx"), 2),
        "decoder_parameters": parameters(bundle / "decoder.onnx"),
        "encoder_parameters": parameters(bundle / "encoder.onnx"),
        "bundle_bytes": sum(f.stat().st_size for f in bundle.iterdir() if f.is_file()),
    }
    found = []
    for temperature in temperatures:
        t = g.manifest.default_temperature if temperature is None else temperature
        quality = generation_quality(g, judge, mnist.x_test, mnist.y_test, 1000, 0, t)
        found.append(
            {
                **cost,
                "temperature": t,
                "accuracy": quality["accuracy"],
                "worst_label_accuracy": quality["worst_label_accuracy"],
                "frechet_distance": quality["frechet_distance"],
                "diversity_ratio": quality["diversity_ratio"],
                "test_negative_elbo": elbo,
            }
        )
    return found


QUALITY = ("accuracy", "worst_label_accuracy", "frechet_distance", "diversity_ratio")


def floor_row(mnist: Mnist) -> dict:
    """The real training digits' row (`vae-eval --real`): what no generator can beat."""
    quality = real_quality(Judge(find_classifier(embedded_bundle())), mnist)
    return {"bundle": "real training digits (the floor)", **{name: quality[name] for name in QUALITY}}


def markdown(rows: list[dict]) -> str:
    lines = [
        "| bundle | T | decoder MFLOP | parameters (enc + dec) | bundle MB | accuracy | worst label "
        "| Fréchet distance | diversity | test -ELBO |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['bundle']} | {_cost(r)} | {100 * r['accuracy']:.2f} % "
            f"| {100 * r['worst_label_accuracy']:.1f} % | {r['frechet_distance']:.2f} "
            f"| {100 * r['diversity_ratio']:.1f} % | {_elbo(r)} |"
        )
    return "\n".join(lines)


def _elbo(row: dict) -> str:
    return f"{row['test_negative_elbo']:.1f}" if "test_negative_elbo" in row else "-"


def _cost(row: dict) -> str:
    """T, MFLOP, parameters and MB, or dashes for the real digits."""
    if "decoder_mflop" not in row:
        return "- | - | - | -"
    return (
        f"{row['temperature']:g} | {row['decoder_mflop']:.1f} "
        f"| {row['encoder_parameters'] / 1e3:.0f}k + {row['decoder_parameters'] / 1e3:.0f}k "
        f"| {row['bundle_bytes'] / 1e6:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--data", required=True, help="MNIST npz (the test split is used)")
    parser.add_argument(
        "--temperature", type=float, action="append", help="repeatable (default: the bundle's)"
    )
    parser.add_argument("--real", action="store_true", help="a first row for real training digits")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    mnist = load_mnist_file(args.data)
    table = [floor_row(mnist)] if args.real else []
    table += [r for b in args.bundles for r in rows(b, mnist, args.temperature or [None])]
    print(markdown(table))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
