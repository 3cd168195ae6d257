"""`vae-eval [BUNDLE] [--data PATH] [--json]`: a bundle's losses on the MNIST test split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vae_runtime._cli import MnistOption, run

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command()
def evaluate(
    bundle: Annotated[
        Path | None, typer.Argument(help="bundle directory [default: the embedded CVAE]", show_default=False)
    ] = None,
    data: MnistOption = None,
    seed: Annotated[int, typer.Option(help="seed of the latent samples", min=0)] = 0,
    classifier: Annotated[
        Path | None,
        typer.Option(
            help="classifier.onnx from `vae-train classifier` [default: beside the bundle]",
            show_default=False,
        ),
    ] = None,
    per_label: Annotated[int, typer.Option(help="generated digits per label (CVAE)", min=2)] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
) -> None:
    """Losses on the test split through the runtime; for a CVAE also how well it obeys labels."""
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
    typer.echo(json.dumps(report, indent=2) if as_json else _table(report))


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


def main() -> None:
    run(app)
