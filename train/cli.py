"""`vae-train`: train a VAE or CVAE on MNIST into a run directory."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vae_runtime._cli import run
from vae_train.quiet import import_tensorflow_quietly

app = typer.Typer(add_completion=False, rich_markup_mode=None)
classifier_app = typer.Typer(add_completion=False, rich_markup_mode=None)


class ModelKind(StrEnum):
    cvae = "cvae"
    vae = "vae"


def _option(help: str, **kwargs):
    return typer.Option(help=help, show_default=False, **kwargs)


@app.command()
def train(
    model: Annotated[ModelKind | None, _option("vae or cvae [default: cvae]")] = None,
    epochs: Annotated[int | None, _option("epochs to train in all [default: 30]", min=1)] = None,
    batch_size: Annotated[int | None, _option("[default: 128]", min=1)] = None,
    latent_dim: Annotated[int | None, _option("[default: 2]", min=1)] = None,
    learning_rate: Annotated[float | None, _option("Adam's [default: 1e-3]", min=0.0)] = None,
    beta: Annotated[float | None, _option("weight of the KL term [default: 1.0]", min=0.0)] = None,
    final_kernel: Annotated[
        int | None, _option("kernel size of the decoder's last layer [default: 3]", min=1)
    ] = None,
    data: Annotated[
        Path | None,
        _option("a Keras mnist.npz or a directory of MNIST IDX files [default: Keras download]"),
    ] = None,
    out: Annotated[Path | None, _option("the run directory [default: runs/MODEL]")] = None,
    seed: Annotated[int | None, _option("[default: 0]", min=0)] = None,
    keep_checkpoints: Annotated[
        int | None, _option("per-epoch checkpoints kept, 0 = all [default: 3]", min=0)
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue the interrupted run in --out")] = False,
) -> None:
    """Train a VAE or conditional VAE on MNIST; validation is on the test split."""
    given = {
        "model": model.value if model else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "latent_dim": latent_dim,
        "learning_rate": learning_rate,
        "beta": beta,
        "final_kernel": final_kernel,
        "seed": seed,
        "keep_checkpoints": keep_checkpoints,
        "data": str(data) if data else None,
    }
    import_tensorflow_quietly()
    from vae_train.run import TrainConfig, resume_config
    from vae_train.run import train as train_run

    explicit = {name: value for name, value in given.items() if value is not None}
    out = out or Path("runs") / explicit.get("model", "cvae")
    config = resume_config(out, explicit) if resume else TrainConfig(**explicit)
    typer.echo(f"training {config.model} for {config.epochs} epochs into {out}")
    summary = train_run(config, out, resume=resume, report=_print_epoch)
    val, tr = summary["validation"], summary["train"]
    typer.echo(
        f"done in {summary['seconds_this_session']:.1f}s: train total {tr['total_loss']:.2f}, "
        f"validation total {val['total_loss']:.2f} (reconstruction "
        f"{val['reconstruction_loss']:.2f} + KL {val['kl_loss']:.2f}); files in {out}"
    )


def _print_epoch(row: dict) -> None:
    typer.echo(
        f"epoch {row['epoch']:>3}/{row['epochs']}  loss {row['total_loss']:8.3f}  "
        f"val {row['val_total_loss']:8.3f} (rec {row['val_reconstruction_loss']:8.3f}, "
        f"kl {row['val_kl_loss']:6.3f})  {row['seconds']:5.1f}s"
    )
    sys.stdout.flush()


@classifier_app.command()
def classifier(
    out: Annotated[Path, typer.Option(help="directory for classifier.keras / .onnx")] = Path(
        "runs/classifier"
    ),
    data: Annotated[
        Path | None, _option("a Keras mnist.npz or a directory of MNIST IDX files [default: Keras download]")
    ] = None,
    epochs: Annotated[int, typer.Option(help="training epochs", min=1)] = 3,
    seed: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """Train the MNIST classifier that vae-eval uses to judge generated digits."""
    import_tensorflow_quietly()
    from vae_train.classifier import ONNX_FILE, train_classifier

    summary = train_classifier(out, str(data) if data else None, epochs, seed, report=_echo)
    typer.echo(f"test accuracy {summary['test_accuracy']:.4f}; wrote {out / ONNX_FILE}")


def _echo(line: str) -> None:
    typer.echo(line)
    sys.stdout.flush()


def main() -> None:
    """`vae-train [OPTIONS]` trains a VAE/CVAE; `vae-train classifier [OPTIONS]` the judge."""
    run(
        classifier_app if sys.argv[1:2] == ["classifier"] else app,
        sys.argv[2:] if sys.argv[1:2] == ["classifier"] else None,
    )
