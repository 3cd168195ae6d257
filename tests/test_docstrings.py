"""The examples in vae_runtime's docstrings, which the API reference shows, run as written."""

import doctest
import importlib

import pytest

MODULES = [
    "vae_runtime",
    "vae_runtime.bundle",
    "vae_runtime.engine",
    "vae_runtime.errors",
    "vae_runtime.generator",
    "vae_runtime.manifest",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    results = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert results.attempted > 0, f"{name} has no examples"
    assert results.failed == 0, f"{results.failed} example(s) of {name} failed (printed above)"
