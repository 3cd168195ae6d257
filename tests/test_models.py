"""The Keras models: the sampling formula, learning, label dependence and .keras round trips."""

import numpy as np
import pytest

from conftest import needs_tensorflow

pytestmark = needs_tensorflow


@pytest.fixture(scope="module")
def tf_modules():
    import keras

    from vae_train import data, models

    return keras, models, data


def test_sampling_follows_the_formula(tf_modules):
    keras, models, _ = tf_modules
    layer = models.Sampling(seed=3)
    z_mean = np.full((20000, 2), 1.5, np.float32)
    z_log_var = np.full((20000, 2), np.log(0.25), np.float32)
    z = keras.ops.convert_to_numpy(layer([z_mean, z_log_var]))
    assert abs(z.mean() - 1.5) < 0.02
    assert abs(z.std() - 0.5) < 0.02  # exp(0.5 * log 0.25) = 0.5


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_loss_falls_on_real_digits(tf_modules, mnist, kind):
    keras, models, data = tf_modules
    keras.utils.set_random_seed(0)
    arch = models.Architecture(num_classes=10 if kind == "cvae" else None)
    model = models.build_model(arch, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = data.batches(data.examples(mnist.x_train[:256], mnist.y_train[:256], kind == "cvae"), 256)
    before = model.evaluate(batch, verbose=0, return_dict=True)
    model.fit(batch.repeat(30), verbose=0, shuffle=False)
    after = model.evaluate(batch, verbose=0, return_dict=True)
    assert set(before) == {"total_loss", "reconstruction_loss", "kl_loss"}
    assert after["total_loss"] < 0.6 * before["total_loss"]
    assert np.isclose(after["total_loss"], after["reconstruction_loss"] + after["kl_loss"], rtol=1e-4)


def test_losses_match_hand_computation(tf_modules, mnist):
    _, models, data = tf_modules
    model = models.build_model(models.Architecture(num_classes=10), seed=0)
    images, labels = data.to_inputs(mnist.x_test[:8], mnist.y_test[:8], conditional=True)
    z_mean, z_log_var, z = (np.asarray(t) for t in model.encoder([images, labels]))
    recon = np.asarray(model.decoder([z, labels])).clip(1e-7, 1 - 1e-7)
    bce = -(images * np.log(recon) + (1 - images) * np.log(1 - recon)).sum(axis=(1, 2, 3)).mean()
    kl = (-0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var))).sum(axis=1).mean()
    # same Sampling seed state: rebuild so the layer draws the same epsilon
    model2 = models.build_model(models.Architecture(num_classes=10), seed=0)
    model2.set_weights(model.get_weights())
    total, reconstruction, kl_loss = (
        float(np.mean(v)) for v in model2.compute_losses((images, labels), False)
    )
    assert kl_loss == pytest.approx(kl, rel=1e-4)
    assert reconstruction == pytest.approx(bce, rel=1e-3)
    assert total == pytest.approx(reconstruction + kl_loss, rel=1e-6)


def test_cvae_decoder_depends_on_the_label(cvae_run):
    import keras

    decoder = keras.models.load_model(cvae_run / "decoder.keras")
    z = np.zeros((2, 2), np.float32)
    images = np.asarray(decoder([z, np.eye(10, dtype=np.float32)[[1, 8]]]))
    assert np.abs(images[0] - images[1]).mean() > 0.02


@pytest.mark.parametrize("name", ["model", "encoder", "decoder"])
def test_keras_files_reload_with_identical_outputs(cvae_run, mnist, name):
    import keras

    from vae_train.data import to_inputs

    path = cvae_run / f"{name}.keras"
    first, second = keras.models.load_model(path), keras.models.load_model(path)
    images, labels = to_inputs(mnist.x_test[:16], mnist.y_test[:16], conditional=True)
    if name == "decoder":
        z = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
        outputs = [np.asarray(m([z, labels])) for m in (first, second)]
    elif name == "encoder":
        outputs = [np.asarray(m([images, labels])[0]) for m in (first, second)]
    else:
        outputs = [np.asarray(m.encoder([images, labels])[0]) for m in (first, second)]
        assert type(first).__name__ == "CVAE" and first.beta == 1.0
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert outputs[0].std() > 0  # a trained model, not zeros


def test_upsample_decoder_costs_what_the_transposed_one_does(tf_modules, tmp_path):
    """Nearest-neighbour upsampling + convolution: the same parameters and multiply-adds (counted from the
    exported ONNX graph), 28x28 digits in [0, 1], and no transposed convolution left for TFLite."""
    import sys
    from pathlib import Path

    import tensorflow as tf
    import tf2onnx

    _, models, _ = tf_modules
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    from flops import graph_mflop

    costs = {}
    for decoder in models.DECODERS:
        model = models.build_decoder(models.Architecture(16, 10, (24, 44), 64, decoder=decoder))
        specs = [tf.TensorSpec((None, *i.shape[1:]), tf.float32, name=i.name) for i in model.inputs]
        path = tmp_path / f"{decoder}.onnx"
        tf2onnx.convert.from_keras(model, input_signature=specs, output_path=str(path))
        costs[decoder] = (model.count_params(), round(graph_mflop(path), 2))
        z = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
        images = np.asarray(model([z, np.eye(10, dtype=np.float32)[:4]]))
        assert images.shape == (4, 28, 28, 1) and images.min() >= 0 and images.max() <= 1
    # 2 x (56k + 854k + 1,863k + 169k) multiply-adds: the dense layer and three convolutions
    assert costs["upsample"] == costs["transposed"] == (85_425, 5.88)
    ops = _tflite_ops(model)
    assert "RESIZE_NEAREST_NEIGHBOR" in ops and "TRANSPOSE_CONV" not in ops


def _tflite_ops(model) -> set[str]:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    flat = Interpreter(model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return {op["op_name"] for op in flat._get_ops_details()}


def test_gaussian_likelihood_is_a_gaussian_of_the_batch_mean_squared_error(tf_modules, mnist):
    _, models, data = tf_modules
    arch = models.Architecture(16, 10)
    model = models.build_model(arch, seed=0, likelihood="gaussian")
    images, labels = data.to_inputs(mnist.x_test[:32], mnist.y_test[:32], conditional=True)
    twin = models.build_model(arch, seed=0)  # the same weights and noise, for the decoder's output
    twin.set_weights(model.get_weights())
    _, _, recon = (np.asarray(t, np.float64) for t in twin((images, labels)))
    squared = ((images - recon) ** 2).sum(axis=(1, 2, 3))
    variance = squared.mean() / 784
    expected = 0.5 * squared / variance + 392 * np.log(2 * np.pi * variance)
    _, reconstruction, _ = (np.asarray(v) for v in model.compute_losses((images, labels), False))
    np.testing.assert_allclose(reconstruction, expected, rtol=1e-4)


def test_kl_warmup_ramps_beta_over_its_steps(tf_modules, mnist):
    keras, models, data = tf_modules
    model = models.build_model(models.Architecture(16, 10), beta=0.5, seed=0, kl_warmup_steps=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    batch = data.to_inputs(mnist.x_test[:16], mnist.y_test[:16], conditional=True)
    weights = []
    for _ in range(6):
        weights.append(float(model.kl_weight()))
        model.train_step(batch)
    assert weights == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    total, reconstruction, kl = (np.asarray(v) for v in model.compute_losses(batch, False, kl_weight=0.25))
    np.testing.assert_allclose(total, reconstruction + 0.5 * 0.25 * kl, rtol=1e-5)
