"""`vae-eval --real`: real training digits scored as generated ones are, the floor of every quality table."""

import json

import numpy as np
import pytest

from conftest import DATA, run_cli
from vae_runtime.bundle import embedded_bundle
from vae_runtime.tools.evaluate import Judge, find_classifier, frechet_distance, real_quality

PER_LABEL = 60  # mnist_small holds at least this many training digits of every label


@pytest.fixture(scope="module")
def judge():
    return Judge(find_classifier(embedded_bundle()))


def test_the_floor_scores_per_label_training_digits_against_the_test_digits(judge, mnist):
    quality = real_quality(judge, mnist, PER_LABEL, seed=3)
    # by hand: the same draw, the classifier's verdicts and features, the test digits' features
    rng = np.random.default_rng(3)
    picked = np.concatenate(
        [rng.choice(np.flatnonzero(mnist.y_train == i), PER_LABEL, replace=False) for i in range(10)]
    )
    features, predicted = judge(mnist.x_train[picked])
    test_features, _ = judge(mnist.x_test)
    labels = mnist.y_train[picked]
    assert np.bincount(labels).tolist() == [PER_LABEL] * 10
    assert quality["accuracy"] == pytest.approx((predicted == labels).mean())
    assert quality["accuracy_by_label"]["4"] == pytest.approx((predicted[labels == 4] == 4).mean())
    assert quality["frechet_distance"] == pytest.approx(frechet_distance(features, test_features), rel=1e-6)
    # real digits are as varied as real digits: the ratio is near 1, unlike a blurry generator's
    assert 0.9 < quality["diversity_ratio"] < 1.1
    assert quality["real_per_label"] == PER_LABEL


def test_another_seed_draws_other_digits(judge, mnist):
    first, second = (real_quality(judge, mnist, PER_LABEL, seed=seed) for seed in (0, 1))
    assert first["frechet_distance"] != second["frechet_distance"]
    assert real_quality(judge, mnist, PER_LABEL, seed=0) == first  # same seed, same numbers


def test_cli_real_json_and_table():
    result = run_cli("vae-eval", "--real", "--data", str(DATA), "--per-label", str(PER_LABEL), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "real" and report["data"]["name"] == "mnist_small.npz"
    assert report["real"]["real_per_label"] == PER_LABEL and 0.5 < report["real"]["accuracy"] <= 1
    table = run_cli("vae-eval", "--real", "--data", str(DATA), "--per-label", str(PER_LABEL))
    assert table.returncode == 0, table.stderr
    assert "real training digits (60 per label of mnist_small.npz)" in table.stdout
    assert f"Frechet distance    {report['real']['frechet_distance']:.3f}" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cvae"], "--real scores real digits, not a bundle's: drop BUNDLE"),
        (["--temperature", "0.5"], "--real scores real digits, not a bundle's: drop --temperature"),
        (["--per-label", "5000"], "--per-label 5000 is more than the"),
    ],
)
def test_cli_real_refuses_what_it_cannot_use(args, message):
    result = run_cli("vae-eval", "--real", *args, "--data", str(DATA))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
