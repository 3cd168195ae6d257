"""Carve the small real MNIST subset the tests use from the full Keras mnist.npz.

python scripts/make_test_subset.py ../shared/data/mnist.npz tests/data/mnist_small.npz
"""

import sys

import numpy as np

TRAIN, TEST = 1200, 400


def main(source: str, target: str) -> None:
    with np.load(source) as full:
        np.savez_compressed(
            target,
            x_train=full["x_train"][:TRAIN],
            y_train=full["y_train"][:TRAIN],
            x_test=full["x_test"][:TEST],
            y_test=full["y_test"][:TEST],
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
