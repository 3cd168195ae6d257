"""Keras -> ONNX with tf2onnx: the one conversion that the classifier (vae_train.classifier) and the
exporter (vae_export.onnx) share."""

from __future__ import annotations

import keras


def to_onnx(model: keras.Model, opset: int):
    """A Keras model with named inputs and dict outputs -> an ONNX ModelProto, batch axis `batch`."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec(i.shape, tf.float32, name=i.name) for i in model.inputs]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    _name_batch_axis(proto)
    return proto


def _name_batch_axis(proto) -> None:
    """tf2onnx names the dynamic batch axis unk__N; call it `batch` wherever it appears."""
    graph = proto.graph
    unknown = {tensor.type.tensor_type.shape.dim[0].dim_param for tensor in [*graph.input, *graph.output]}
    for tensor in [*graph.input, *graph.output, *graph.value_info]:
        for dim in tensor.type.tensor_type.shape.dim:
            if dim.dim_param in unknown:
                dim.dim_param = "batch"
