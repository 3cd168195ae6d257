"""An MNIST classifier that judges generated digits (vae-eval): accuracy per label, and features
for a Frechet distance. Trained with `vae-train classifier`, exported to ONNX for the runtime.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
from keras import layers

from vae_runtime.errors import VaeDigitsError
from vae_runtime.fileio import atomic_write_bytes, atomic_write_text
from vae_train.data import NUM_CLASSES, load_mnist
from vae_train.models import IMAGE_SHAPE

FEATURES = 128
ONNX_FILE = "classifier.onnx"


def build_classifier() -> keras.Model:
    """image -> probabilities (batch, 10), through a layer named "features" (batch, 128)."""
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Conv2D(32, 3, activation="relu")(image)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    features = layers.Dense(FEATURES, activation="relu", name="features")(x)
    probabilities = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(features)
    return keras.Model(image, probabilities, name="classifier")


def judge(model: keras.Model) -> keras.Model:
    """The exported form: image -> {"features", "probabilities"}."""
    outputs = {"features": model.get_layer("features").output, "probabilities": model.outputs[0]}
    return keras.Model(model.inputs, outputs)


def train_classifier(
    out: Path, data: str | None = None, epochs: int = 3, seed: int = 0, report=print
) -> dict:
    """Train on the train split, report test accuracy, write classifier.keras and classifier.onnx."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise VaeDigitsError(f"--out {out} already exists; choose a new --out")
    mnist = load_mnist(data)
    keras.utils.set_random_seed(seed)
    model = build_classifier()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    train = _with_targets(mnist.x_train, mnist.y_train, shuffle_seed=seed)
    test = _with_targets(mnist.x_test, mnist.y_test)
    for epoch in range(1, epochs + 1):
        logs = model.fit(train, validation_data=test, epochs=1, shuffle=False, verbose=0).history
        report(f"epoch {epoch}/{epochs}  test accuracy {logs['val_accuracy'][-1]:.4f}")
    probabilities = model.predict(test, verbose=0)
    accuracy = float((probabilities.argmax(axis=1) == mnist.y_test).mean())
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "classifier.keras")
    _write_onnx(model, out / ONNX_FILE, mnist.x_test[:500])
    summary = {"test_accuracy": accuracy, "epochs": epochs, "data_source": mnist.provenance}
    atomic_write_text(out / "classifier.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _with_targets(images: np.ndarray, labels: np.ndarray, shuffle_seed: int | None = None):
    import tensorflow as tf

    pixels = (images.astype("float32") / 255.0)[..., None]
    dataset = tf.data.Dataset.from_tensor_slices((pixels, labels.astype("int64")))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(images), seed=shuffle_seed)
    return dataset.batch(128).prefetch(tf.data.AUTOTUNE)


def _write_onnx(model: keras.Model, path: Path, probe: np.ndarray) -> None:
    import onnx
    import onnxruntime as ort

    from vae_runtime.quiet import native_output_silenced
    from vae_train.convert import to_onnx

    inference = judge(model)
    with native_output_silenced():
        proto = to_onnx(inference, opset=17)
    data = proto.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    images = (probe.astype("float32") / 255.0)[..., None]
    got = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {"image": images}), strict=True)
    )
    expected = inference.predict(images, verbose=0)
    for name in ("features", "probabilities"):
        if not np.allclose(got[name], expected[name], atol=1e-4):
            raise VaeDigitsError(f"the ONNX classifier's {name} differ from Keras; nothing written")
    onnx.checker.check_model(proto)
    atomic_write_bytes(path, data)
