"""`vae-eval [BUNDLE] [--data PATH] [--json]`: a bundle's losses on the MNIST test split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vae_runtime._cli import run

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command()
def evaluate(
    bundle: Annotated[
        Path | None, typer.Argument(help="bundle directory [default: the embedded CVAE]", show_default=False)
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="MNIST npz / IDX directory [default: the Keras cache, downloaded if missing]",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the latent samples", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
) -> None:
    """Reconstruction, KL and total loss (nats per digit) on the test split, through the runtime."""
    from vae_runtime.evaluate import elbo_terms
    from vae_runtime.generator import Generator
    from vae_runtime.mnist import load_mnist_anywhere

    g = Generator.load(bundle)
    mnist = load_mnist_anywhere(data)
    beta = float(g.info.training.get("config", {}).get("beta", 1.0))
    terms = elbo_terms(g, mnist.x_test, mnist.y_test, seed=seed, beta=beta)
    report = {
        "bundle": str(g.bundle),
        "kind": g.info.kind,
        "data": mnist.source,
        **terms,
        "training_validation": g.info.training.get("validation", {}),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    trained = report["training_validation"]
    typer.echo(f"{g.info.kind} bundle {g.bundle} on {terms['digits']:,} test digits ({mnist.source})")
    typer.echo(f"{'loss (nats/digit)':<22}{'runtime':>10}{'training':>10}")
    for name in ("reconstruction_loss", "kl_loss", "total_loss"):
        before = trained.get(name)
        typer.echo(f"{name:<22}{terms[name]:>10.2f}" + (f"{before:>10.2f}" if before else ""))


def main() -> None:
    run(app)
