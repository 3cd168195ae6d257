"""`vae-train --tensorboard`: the event files hold the losses of history.csv and a digit grid per epoch."""

import numpy as np
import pytest

from conftest import DATA, needs_tensorflow, run_cli

pytestmark = needs_tensorflow


def events(directory):
    import tensorflow as tf

    found = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            found += [(event.step, value) for value in event.summary.value]
    return found


def test_tensorboard_logs_losses_and_a_digit_grid(tmp_path):
    import tensorflow as tf

    from vae_train.run import read_history

    out = tmp_path / "run"
    args = ["--model", "cvae", "--epochs", "2", "--batch-size", "128", "--data", str(DATA)]
    result = run_cli("vae-train", *args, "--out", str(out), "--tensorboard")
    assert result.returncode == 0, result.stderr
    history = read_history(out)
    for split, prefix in (("train", ""), ("validation", "val_")):
        scalars = {
            (step, value.tag): float(tf.make_ndarray(value.tensor))
            for step, value in events(out / "logs" / split)
            if value.tag.endswith("_loss")
        }
        for row in history:
            for loss in ("total_loss", "reconstruction_loss", "kl_loss"):
                assert scalars[(row["epoch"], loss)] == pytest.approx(row[prefix + loss], rel=1e-5)
    images = [(step, v) for step, v in events(out / "logs" / "validation") if v.tag.startswith("generated")]
    assert [step for step, _ in images] == [1, 2]
    width, height, png = (tf.make_ndarray(images[-1][1].tensor)[i] for i in range(3))
    picture = tf.io.decode_png(png).numpy()
    # ten rows (labels) of eight digits, 28 px + 2 px gaps, doubled
    assert (int(width), int(height)) == (2 * (2 + 8 * 30), 2 * (2 + 10 * 30)) == picture.shape[1::-1]
    assert picture.std() > 10 and not np.array_equal(
        tf.io.decode_png(tf.make_ndarray(images[0][1].tensor)[2]).numpy(), picture
    )  # the model learned between the epochs
