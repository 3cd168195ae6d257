"""`vae-eval [BUNDLE] [--data PATH] [--json]`: a bundle's losses on the MNIST test split and, for a CVAE,
how well its generated digits obey their labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vae_runtime.clikit.common import Version, data_option, integer, main, new_app, number

app = new_app("Losses on the test split through the runtime; for a CVAE also how well it obeys labels.")
EXAMPLES = """[b]Examples[/b]

  vae-eval --data mnist.npz
  vae-eval bundles/cvae --data mnist.npz --json > report.json
  vae-eval --real --data mnist.npz      # the floor: real training digits scored the same way
"""


@app.command(epilog=EXAMPLES)
def evaluate(
    bundle: Annotated[
        Path | None,
        typer.Argument(
            metavar="BUNDLE", help="Bundle directory (default: the embedded cvae-16d).", show_default=False
        ),
    ] = None,
    data: Annotated[Path | None, data_option()] = None,
    seed: Annotated[int, typer.Option(parser=integer(0), help="Seed of the latent samples.")] = 0,
    classifier: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="classifier.onnx from `vae-train classifier`, or its .tflite twin (default: the one beside "
            "the bundle, else the embedded one).",
            show_default=False,
        ),
    ] = None,
    per_label: Annotated[
        int, typer.Option(parser=integer(2, 10_000), help="Generated digits per label (CVAE), 2-10,000.")
    ] = 1000,
    temperature: Annotated[
        float | None,
        typer.Option(
            parser=number(1e-6, 100), help="Sampling temperature (default: the bundle's).", show_default=False
        ),
    ] = None,
    real: Annotated[
        bool,
        typer.Option(
            "--real",
            help="Score real training digits (--per-label of each label) instead of a bundle's, against "
            "the test digits: the floor the generated digits' numbers are measured against.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    version: Version = False,
) -> None:
    """Report the ELBO terms on the test split next to training's, and the quality of generated digits."""
    if real:
        _evaluate_real(bundle, data, seed, classifier, per_label, temperature, as_json)
        return
    from vae_runtime.clikit.progress import Progress
    from vae_runtime.generator import Generator
    from vae_runtime.mnist import load_mnist_anywhere
    from vae_runtime.tools.evaluate import Judge, elbo_terms, find_classifier, generation_quality

    g = Generator.load(bundle)
    judge = Judge(classifier or find_classifier(g.bundle)) if g.manifest.conditional else None
    mnist = load_mnist_anywhere(data)
    trained_with = g.manifest.training.get("config", {})
    beta = float(trained_with.get("beta", 1.0))
    temperature = g.manifest.default_temperature if temperature is None else temperature  # reported
    steps = 1 + (g.manifest.num_classes + 2 if judge else 0)
    with Progress(steps, "evaluating", stream=typer.get_text_stream("stderr")) as bar:
        report = {
            "bundle": str(g.bundle),
            "kind": g.manifest.kind,
            "data": mnist.provenance,
            **elbo_terms(g, mnist.x_test, mnist.y_test, seed=seed, beta=beta),
            "training_likelihood": trained_with.get("likelihood", "bernoulli"),
            "training_validation": g.manifest.training.get("validation", {}),
        }
        bar.advance()
        if judge is not None:
            report["generation"] = generation_quality(
                g, judge, mnist.x_test, mnist.y_test, per_label, seed, temperature, progress=bar.advance
            )
    print(json.dumps(report, indent=2) if as_json else _table(report))


def _evaluate_real(
    bundle: Path | None,
    data: Path | None,
    seed: int,
    classifier: Path | None,
    per_label: int,
    temperature: float | None,
    as_json: bool,
) -> None:
    from vae_runtime.bundle import embedded_bundle
    from vae_runtime.clikit.progress import Progress
    from vae_runtime.errors import VaeDigitsError
    from vae_runtime.mnist import load_mnist_anywhere
    from vae_runtime.tools.evaluate import Judge, find_classifier, real_quality

    if bundle is not None or temperature is not None:
        given = "BUNDLE" if bundle is not None else "--temperature"
        raise VaeDigitsError(f"--real scores real digits, not a bundle's: drop {given}")
    judge = Judge(classifier or find_classifier(embedded_bundle()))
    mnist = load_mnist_anywhere(data)
    with Progress(12, "evaluating real digits", stream=typer.get_text_stream("stderr")) as bar:
        quality = real_quality(judge, mnist, per_label, seed, progress=bar.advance)
    report = {"kind": "real", "data": mnist.provenance, "real": quality}
    print(json.dumps(report, indent=2) if as_json else _quality_lines(quality, _real_heading(report)))


def _real_heading(report: dict[str, Any]) -> str:
    return (
        f"real training digits ({report['real']['real_per_label']} per label of {report['data']['name']}) "
        "judged by the classifier against the test digits: the floor"
    )


def _quality_lines(quality: dict[str, Any], heading: str) -> str:
    by_label = "  ".join(f"{k}:{v:.3f}" for k, v in quality["accuracy_by_label"].items())
    return "\n".join(
        [
            heading,
            f"  accuracy by label   {by_label}",
            f"  accuracy            {quality['accuracy']:.4f} "
            f"(worst label {quality['worst_label_accuracy']:.4f})",
            f"  Frechet distance    {quality['frechet_distance']:.3f} (vs test digits)",
            f"  in-label diversity  {quality['diversity_generated']:.3f} "
            f"(test digits: {quality['diversity_real']:.3f}, ratio {quality['diversity_ratio']:.1%})",
        ]
    )


def _table(report: dict[str, Any]) -> str:
    # a sigma-VAE's training losses are Gaussian ones: beside the runtime's Bernoulli losses they mislead
    bernoulli = report["training_likelihood"] == "bernoulli"
    trained = report["training_validation"] if bernoulli else {}
    lines = [
        f"{report['kind']} bundle {report['bundle']} on {report['digits']:,} test digits "
        f"({report['data']['name']})",
        f"{'loss (nats/digit)':<22}{'runtime':>10}" + (f"{'training':>10}" if trained else ""),
    ]
    for name in ("reconstruction_loss", "kl_loss", "total_loss", "elbo_loss"):
        before = f"{trained[name]:>10.2f}" if name in trained else ""
        lines.append(f"{name:<22}{report[name]:>10.2f}{before}")
    lines.append(
        "(total_loss = reconstruction + beta * KL, what training minimised; elbo_loss = the negative ELBO)"
        if bernoulli
        else "(Bernoulli losses; this bundle trained on a Gaussian likelihood, whose losses are not shown: "
        "total_loss = reconstruction + beta * KL; elbo_loss = the negative ELBO)"
    )
    quality = report.get("generation")
    if quality:
        heading = (
            f"generated digits judged by the classifier ({quality['generated_per_label']} per label, "
            f"temperature {quality['temperature']:g})"
        )
        lines.append(_quality_lines(quality, heading))
    return "\n".join(lines)


def run() -> None:
    main(app)
