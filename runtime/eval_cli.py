"""`vae-eval [BUNDLE] [--data PATH] [--json]`: a bundle's losses on the MNIST test split."""

from __future__ import annotations

import json
from pathlib import Path

from vae_runtime._cli import Parser, add_mnist_option, integer, run


def evaluate(
    bundle: Path | None, data: Path | None, seed: int, classifier: Path | None, per_label: int, as_json: bool
) -> None:
    from vae_runtime.evaluate import CLASSIFIER, Judge, elbo_terms, generation_quality
    from vae_runtime.generator import Generator
    from vae_runtime.mnist import load_mnist_anywhere

    g = Generator.load(bundle)
    judge = Judge(classifier or g.bundle.parent / CLASSIFIER) if g.info.conditional else None
    mnist = load_mnist_anywhere(data)
    beta = float(g.info.training.get("config", {}).get("beta", 1.0))
    report = {
        "bundle": str(g.bundle),
        "kind": g.info.kind,
        "data": mnist.source,
        **elbo_terms(g, mnist.x_test, mnist.y_test, seed=seed, beta=beta),
        "training_validation": g.info.training.get("validation", {}),
    }
    if judge is not None:
        report["generation"] = generation_quality(g, judge, mnist.x_test, mnist.y_test, per_label, seed)
    print(json.dumps(report, indent=2) if as_json else _table(report))


def _table(report: dict) -> str:
    trained = report["training_validation"]
    lines = [
        f"{report['kind']} bundle {report['bundle']} on {report['digits']:,} test digits ({report['data']})",
        f"{'loss (nats/digit)':<22}{'runtime':>10}{'training':>10}",
    ]
    for name in ("reconstruction_loss", "kl_loss", "total_loss"):
        before = f"{trained[name]:>10.2f}" if name in trained else ""
        lines.append(f"{name:<22}{report[name]:>10.2f}{before}")
    quality = report.get("generation")
    if quality:
        by_label = "  ".join(f"{k}:{v:.3f}" for k, v in quality["accuracy_by_label"].items())
        lines += [
            f"generated digits judged by the classifier ({quality['generated_per_label']} per label)",
            f"  accuracy by label   {by_label}",
            f"  accuracy            {quality['accuracy']:.4f}",
            f"  Frechet distance    {quality['frechet_distance']:.3f} (generated vs test digits)",
            f"  in-label diversity  {quality['diversity_generated']:.3f} "
            f"(test digits: {quality['diversity_real']:.3f})",
        ]
    return "\n".join(lines)


def parser() -> Parser:
    cli = Parser(
        description="Losses on the test split through the runtime; for a CVAE also how well it obeys labels."
    )
    cli.add_argument("bundle", nargs="?", type=Path, help="bundle directory (default: the embedded CVAE)")
    add_mnist_option(cli)
    cli.add_argument("--seed", type=integer(0), default=0, help="seed of the latent samples")
    cli.add_argument(
        "--classifier",
        type=Path,
        metavar="FILE",
        help="classifier.onnx from `vae-train classifier` (default: beside the bundle)",
    )
    cli.add_argument("--per-label", type=integer(2), default=1000, help="generated digits per label (CVAE)")
    cli.add_argument("--json", dest="as_json", action="store_true", help="print JSON for machines")
    cli.set_defaults(handler=evaluate)
    return cli


def main() -> None:
    run(parser())
