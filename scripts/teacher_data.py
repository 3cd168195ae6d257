"""Distillation data: MNIST's training split plus a teacher bundle's digits, as a Keras-format mnist.npz.

    python scripts/teacher_data.py ../shared/data/mnist.npz runs/teacher-data.npz \
        --teacher bench/bundles/cvae-hq --per-label 6000 [--temperature 0.7] [--seed 1]

The teacher samples from its own prior at its default temperature (the known-good recipe); the test split
stays the real one, so validation losses and `vae-eval` still measure against real digits. Train on it with
`vae-train --data runs/teacher-data.npz ...`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from vae_runtime.generator import Generator
from vae_runtime.mnist import load_mnist_file


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mnist", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--teacher", required=True, help="a CVAE bundle directory or embedded name")
    parser.add_argument("--per-label", type=int, default=6000)
    parser.add_argument("--temperature", type=float, default=None, help="default: the teacher's")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    real = load_mnist_file(args.mnist)
    teacher = Generator.load(args.teacher)
    labels = np.repeat(np.arange(teacher.manifest.num_classes), args.per_label)
    digits = teacher.generate(labels, seed=args.seed, temperature=args.temperature)
    with tempfile.NamedTemporaryFile(dir=args.out.parent, suffix=".npz", delete=False) as partial:
        np.savez_compressed(
            partial,
            x_train=np.concatenate([real.x_train, digits]),
            y_train=np.concatenate([real.y_train, labels.astype(real.y_train.dtype)]),
            x_test=real.x_test,
            y_test=real.y_test,
        )
    Path(partial.name).chmod(0o644)  # a temporary file is private; the data set is not
    Path(partial.name).replace(args.out)
    print(f"{args.out}: {len(real.x_train)} real + {len(digits)} teacher digits ({args.teacher})")


if __name__ == "__main__":
    main()
