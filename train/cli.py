"""`vae-train`: train a VAE or CVAE on MNIST into a run directory (`vae-train classifier`: the judge)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vae_runtime.clikit.common import Version, data_option, integer, main, new_app, number
from vae_train.limits import LIMITS

app = new_app("Train a VAE or conditional VAE on MNIST; validation is on the test split.")
Data = Annotated[
    Path | None,
    data_option("A Keras mnist.npz or a directory of MNIST IDX files (default: the Keras download)."),
]
EXAMPLES = """[b]Examples[/b]

  vae-train --model cvae --epochs 10 --data mnist.npz --out runs/cvae
  vae-train --out runs/cvae --resume --epochs 20 --data mnist.npz
  vae-train --latent-dim 16 --filters 64 128 --dense-units 128 --tensorboard --out runs/big
  vae-train classifier --data mnist.npz --out runs/classifier
  vae-train --strategy multi-worker --data mnist.npz --out runs/cvae   # on each worker, with TF_CONFIG

Watch a run learn: [b]tensorboard --logdir runs/[/b] (with --tensorboard).
"""


class Model(StrEnum):
    cvae = "cvae"
    vae = "vae"


class Decoder(StrEnum):
    transposed = "transposed"
    upsample = "upsample"


class Likelihood(StrEnum):
    bernoulli = "bernoulli"
    gaussian = "gaussian"


class Schedule(StrEnum):
    constant = "constant"
    cosine = "cosine"


class Strategy(StrEnum):
    auto = "auto"
    default = "default"
    mirrored = "mirrored"
    multi_worker = "multi-worker"


def _option(help: str, parser=None, **kwargs):
    return typer.Option(help=help, parser=parser, show_default=False, **kwargs)


@app.callback(invoke_without_command=True, epilog=EXAMPLES)
def train(
    context: typer.Context,
    model: Annotated[Model | None, _option("cvae or vae (default: cvae).")] = None,
    epochs: Annotated[int | None, _option("Epochs to train in all (default: 30).", integer(1))] = None,
    batch_size: Annotated[
        int | None,
        _option(
            f"The global batch, over all replicas, 1-{LIMITS['batch_size']:,} (default: 128).",
            integer(1, LIMITS["batch_size"]),
        ),
    ] = None,
    latent_dim: Annotated[
        int | None,
        _option(
            f"Latent dimensions, 1-{LIMITS['latent_dim']} (default: 2).", integer(1, LIMITS["latent_dim"])
        ),
    ] = None,
    learning_rate: Annotated[float | None, _option("Adam's (default: 1e-3).", number(1e-9, 10))] = None,
    beta: Annotated[float | None, _option("Weight of the KL term (default: 1.0).", number(0, 1e3))] = None,
    final_kernel: Annotated[
        int | None,
        _option(
            f"Kernel size of the decoder's last layer, 1-{LIMITS['final_kernel']} (default: 3).",
            integer(1, LIMITS["final_kernel"]),
        ),
    ] = None,
    filters: Annotated[
        tuple[int, int] | None,
        _option(
            f"Filters of the two convolutions, each 1-{LIMITS['filters']} (default: 32 64).",
            integer(1, LIMITS["filters"]),
            metavar="F1 F2",
        ),
    ] = None,
    dense_units: Annotated[
        int | None,
        _option(
            f"Units of the encoder's dense layer, 1-{LIMITS['dense_units']} (default: 16).",
            integer(1, LIMITS["dense_units"]),
        ),
    ] = None,
    decoder: Annotated[
        Decoder | None,
        _option(
            "transposed (stride-2 transposed convolutions) or upsample (nearest-neighbour upsampling + "
            "convolution: the same compute, no checkerboard, a small microcontroller arena) "
            "(default: transposed)."
        ),
    ] = None,
    likelihood: Annotated[
        Likelihood | None,
        _option(
            "bernoulli (binary cross-entropy) or gaussian (one learned variance for all pixels: the "
            "sigma-VAE, which balances reconstruction and KL by itself) (default: bernoulli)."
        ),
    ] = None,
    lr_schedule: Annotated[
        Schedule | None,
        _option("constant or cosine (decays to 1 % of --learning-rate over the run) (default: constant)."),
    ] = None,
    kl_warmup: Annotated[
        int | None,
        _option("Epochs over which the KL weight rises from 0 to --beta (default: 0).", integer(0)),
    ] = None,
    data: Data = None,
    out: Annotated[Path | None, _option("The run directory (default: runs/MODEL).")] = None,
    seed: Annotated[int | None, _option("(default: 0)", integer(0))] = None,
    keep_checkpoints: Annotated[
        int | None, _option("Per-epoch checkpoints kept, 0 = all (default: 3).", integer(0))
    ] = None,
    strategy: Annotated[
        Strategy | None,
        _option(
            "auto (mirrored over 2+ GPUs, else default), default (one device), mirrored (every GPU, "
            "or logical CPU, of this machine) or multi-worker (several machines, from TF_CONFIG; see "
            "README) (default: auto)."
        ),
    ] = None,
    mixed_precision: Annotated[
        bool | None,
        _option("mixed_float16 on a GPU (float32 weights, losses and final sigmoid); refused without one."),
    ] = None,
    tensorboard: Annotated[
        bool | None, _option("Write TensorBoard logs (losses, a grid of digits per epoch) into OUT/logs.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out.")] = False,
    version: Version = False,
) -> None:
    """Train a VAE or conditional VAE on MNIST into a run directory; validation is on the test split.

    [b]vae-train classifier --help[/b]: the classifier vae-eval uses.
    """
    if context.invoked_subcommand is not None:
        return
    given = {
        "model": model.value if model else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "latent_dim": latent_dim,
        "learning_rate": learning_rate,
        "beta": beta,
        "final_kernel": final_kernel,
        "filters": filters,
        "dense_units": dense_units,
        "decoder": decoder.value if decoder else None,
        "likelihood": likelihood.value if likelihood else None,
        "lr_schedule": lr_schedule.value if lr_schedule else None,
        "kl_warmup": kl_warmup,
        "data": str(data) if data else None,
        "seed": seed,
        "keep_checkpoints": keep_checkpoints,
        "tensorboard": tensorboard,
        "strategy": strategy.value if strategy else None,
        "mixed_precision": mixed_precision,
    }
    _train({name: value for name, value in given.items() if value is not None}, out, resume)


def _train(explicit: dict, out: Path | None, resume: bool) -> None:
    from vae_runtime.clikit.progress import Progress
    from vae_train.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from vae_train.distribute import is_other_worker
    from vae_train.run import TrainConfig, resume_config
    from vae_train.run import train as train_run

    out = out or Path("runs") / explicit.get("model", "cvae")
    config = resume_config(out, explicit) if resume else TrainConfig(**explicit)
    writes = not (config.strategy == "multi-worker" and is_other_worker())
    if writes:
        epochs = f"{config.epochs} epoch{'s' * (config.epochs != 1)}"
        print(f"training {config.model} for {epochs} into {out}", flush=True)
    else:  # its settings may still change: it takes the chief's
        print("training as a worker of a multi-worker run: the chief writes the run directory", flush=True)
    with Progress(1, "starting") as bar:

        def progress(epoch: int, step: int, steps: int) -> None:
            if step == 1:
                bar.restart(steps, f"epoch {epoch}/{config.epochs}")
            bar.update(step)

        summary = train_run(
            config,
            out,
            resume=resume,
            report=lambda row: bar.line(_epoch_line(row)),
            progress=progress,
            announce=lambda setup: bar.line(_setup_line(setup)),
        )
    val, tr = summary["validation"], summary["train"]
    files = f"; files in {out}" if writes else ""
    print(
        f"done in {summary['seconds_this_session']:.1f}s: train total {tr['total_loss']:.2f}, "
        f"validation total {val['total_loss']:.2f} (reconstruction "
        f"{val['reconstruction_loss']:.2f} + KL {val['kl_loss']:.2f}){files}"
    )


def _setup_line(setup: dict) -> str:
    return (
        f"strategy {setup['strategy']}: {setup['replicas']} replica(s) x batch {setup['per_replica_batch']}"
        f" = global batch {setup['global_batch']} on {', '.join(setup['devices'])}"
    )


def _epoch_line(row: dict) -> str:
    return (
        f"epoch {row['epoch']:>3}/{row['epochs']}  loss {row['total_loss']:8.3f}  "
        f"val {row['val_total_loss']:8.3f} (rec {row['val_reconstruction_loss']:8.3f}, "
        f"kl {row['val_kl_loss']:6.3f})  {row['seconds']:5.1f}s"
    )


@app.command(epilog="[b]Example[/b]  vae-train classifier --data mnist.npz --out runs/classifier")
def classifier(
    out: Annotated[Path, typer.Option(help="Directory for classifier.keras / .onnx.")] = Path(
        "runs/classifier"
    ),
    data: Data = None,
    epochs: Annotated[int, typer.Option(parser=integer(1), help="Training epochs.")] = 3,
    seed: Annotated[int, typer.Option(parser=integer(0))] = 0,
) -> None:
    """Train the MNIST classifier that vae-eval uses to judge generated digits."""
    from vae_runtime.clikit.progress import Progress
    from vae_train.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from vae_train.classifier import ONNX_FILE, train_classifier

    with Progress(epochs, "training the classifier") as bar:

        def report(line: str) -> None:
            bar.line(line)
            bar.advance()

        summary = train_classifier(out, str(data) if data else None, epochs, seed, report=report)
    print(f"test accuracy {summary['test_accuracy']:.4f}; wrote {out / ONNX_FILE}")


def run() -> None:
    main(app)
