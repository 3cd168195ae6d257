"""`vae-train`: train a VAE or CVAE on MNIST into a run directory."""

from __future__ import annotations

import sys
from pathlib import Path

from vae_runtime._cli import Parser, add_mnist_option, integer, number, run
from vae_train.quiet import import_tensorflow_quietly

DATA_HELP = "a Keras mnist.npz or a directory of MNIST IDX files (default: the Keras download)"


def train(out: Path | None, resume: bool, **given) -> None:
    given["data"] = str(given["data"]) if given["data"] else None
    import_tensorflow_quietly()
    from vae_train.run import TrainConfig, resume_config
    from vae_train.run import train as train_run

    explicit = {name: value for name, value in given.items() if value is not None}
    out = out or Path("runs") / explicit.get("model", "cvae")
    config = resume_config(out, explicit) if resume else TrainConfig(**explicit)
    print(f"training {config.model} for {config.epochs} epochs into {out}")
    summary = train_run(config, out, resume=resume, report=_print_epoch)
    val, tr = summary["validation"], summary["train"]
    print(
        f"done in {summary['seconds_this_session']:.1f}s: train total {tr['total_loss']:.2f}, "
        f"validation total {val['total_loss']:.2f} (reconstruction "
        f"{val['reconstruction_loss']:.2f} + KL {val['kl_loss']:.2f}); files in {out}"
    )


def _print_epoch(row: dict) -> None:
    print(
        f"epoch {row['epoch']:>3}/{row['epochs']}  loss {row['total_loss']:8.3f}  "
        f"val {row['val_total_loss']:8.3f} (rec {row['val_reconstruction_loss']:8.3f}, "
        f"kl {row['val_kl_loss']:6.3f})  {row['seconds']:5.1f}s"
    )
    sys.stdout.flush()


def classifier(out: Path, data: Path | None, epochs: int, seed: int) -> None:
    import_tensorflow_quietly()
    from vae_train.classifier import ONNX_FILE, train_classifier

    summary = train_classifier(out, str(data) if data else None, epochs, seed, report=_echo)
    print(f"test accuracy {summary['test_accuracy']:.4f}; wrote {out / ONNX_FILE}")


def _echo(line: str) -> None:
    print(line)
    sys.stdout.flush()


def train_parser() -> Parser:
    cli = Parser(
        description="Train a VAE or conditional VAE on MNIST; validation is on the test split. "
        "`vae-train classifier --help`: the classifier vae-eval uses.",
    )
    cli.add_argument("--model", choices=("cvae", "vae"), help="(default: cvae)")
    cli.add_argument("--epochs", type=integer(1), help="epochs to train in all (default: 30)")
    cli.add_argument("--batch-size", type=integer(1), help="(default: 128)")
    cli.add_argument("--latent-dim", type=integer(1), help="(default: 2)")
    cli.add_argument("--learning-rate", type=number(0.0), help="Adam's (default: 1e-3)")
    cli.add_argument("--beta", type=number(0.0), help="weight of the KL term (default: 1.0)")
    cli.add_argument(
        "--final-kernel", type=integer(1), help="kernel size of the decoder's last layer (default: 3)"
    )
    add_mnist_option(cli, DATA_HELP)
    cli.add_argument("--out", type=Path, help="the run directory (default: runs/MODEL)")
    cli.add_argument("--seed", type=integer(0), help="(default: 0)")
    cli.add_argument(
        "--keep-checkpoints", type=integer(0), help="per-epoch checkpoints kept, 0 = all (default: 3)"
    )
    cli.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    cli.set_defaults(handler=train)
    return cli


def classifier_parser() -> Parser:
    cli = Parser(
        prog="vae-train classifier",
        description="Train the MNIST classifier that vae-eval uses to judge generated digits.",
    )
    cli.add_argument(
        "--out", type=Path, default=Path("runs/classifier"), help="directory for classifier.keras / .onnx"
    )
    add_mnist_option(cli, DATA_HELP)
    cli.add_argument("--epochs", type=integer(1), default=3, help="training epochs")
    cli.add_argument("--seed", type=integer(0), default=0)
    cli.set_defaults(handler=classifier)
    return cli


def main() -> None:
    """`vae-train [OPTIONS]` trains a VAE/CVAE; `vae-train classifier [OPTIONS]` the judge."""
    if sys.argv[1:2] == ["classifier"]:
        run(classifier_parser(), sys.argv[2:])
    run(train_parser())
