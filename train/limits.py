"""Upper bounds of the settings that size a model and its batches: `vae-train` and `TrainConfig` check them.

Within these bounds a model builds; whether it fits in this machine's memory is another matter, and an
out-of-memory error names the options to lower. The latent bound is the runtime's, so that every run
can be exported.
"""

from vae_runtime.manifest import MAX_LATENT_DIM

LIMITS = {  # option -> the largest value accepted
    "batch_size": 65_536,  # more than MNIST's 60,000 training digits: one batch per epoch
    "latent_dim": MAX_LATENT_DIM,
    "filters": 1024,  # each of the two convolutions
    "dense_units": 4096,
    "final_kernel": 7,
}


def option(name: str) -> str:
    """The command-line flag of a setting: batch_size -> --batch-size."""
    return f"--{name.replace('_', '-')}"
