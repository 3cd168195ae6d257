"""Keras -> ONNX with tf2onnx: the one conversion that the classifier (vae_train.classifier) and the
exporter (vae_export.onnx) share."""

from __future__ import annotations

import keras
import numpy as np


def to_onnx(model: keras.Model, opset: int):
    """A Keras model with named inputs and dict outputs -> an ONNX ModelProto, batch axis `batch`."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec(i.shape, tf.float32, name=i.name) for i in model.inputs]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    _name_batch_axis(proto)
    _portable_nearest_resizes(proto)
    return proto


def _name_batch_axis(proto) -> None:
    """tf2onnx names the dynamic batch axis unk__N; call it `batch` wherever it appears."""
    graph = proto.graph
    unknown = {tensor.type.tensor_type.shape.dim[0].dim_param for tensor in [*graph.input, *graph.output]}
    for tensor in [*graph.input, *graph.output, *graph.value_info]:
        for dim in tensor.type.tensor_type.shape.dim:
            if dim.dim_param in unknown:
                dim.dim_param = "batch"


def _portable_nearest_resizes(proto) -> None:
    """tf2onnx writes Keras's nearest-neighbour Resizing in the `tf_half_pixel_for_nn` coordinates, deprecated
    since opset 13 (onnxruntime warns on every load). For whole-number scales and `floor` rounding it picks
    the same pixels as `asymmetric`, which every runtime supports: floor((x + 0.5) / s) = floor(x / s) for
    whole x and s, since 0.5 / s < 1 / s."""
    from onnx import numpy_helper

    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in proto.graph.initializer}
    for node in proto.graph.node:
        attributes = {attribute.name: attribute for attribute in node.attribute}
        mode = attributes.get("coordinate_transformation_mode")
        if node.op_type != "Resize" or mode is None or mode.s != b"tf_half_pixel_for_nn":
            continue
        scales = constants.get(node.input[2]) if len(node.input) > 2 else None
        rounding = attributes.get("nearest_mode")
        if (
            attributes["mode"].s == b"nearest"
            and rounding is not None
            and rounding.s == b"floor"
            and scales is not None
            and scales.size
            and np.all(scales >= 1)
            and np.all(scales == np.round(scales))
        ):
            mode.s = b"asymmetric"
