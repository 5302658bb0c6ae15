"""torch.nn's vocabulary re-implemented as Keras 3 layers, with torch's arguments and numerics.

Data inside Keras models is channels-last (NHWC); parameters are Keras variables whose torch
name and layout rule (:mod:`core.layouts`) each layer reports through ``torch_params()``.
:func:`torch_named_params` walks a model and yields every mirrored variable under the exact name
torch's ``state_dict`` uses, which is all the checkpoint bridge needs.

Numerics matched to torch on purpose:

* ``Conv2d``: torch pads symmetrically by ``padding``; TF's ``"same"`` pads asymmetrically for
  stride 2, so the input is zero-padded explicitly and the convolution is ``"valid"``.
* ``ConvTranspose2d``: the full ``"valid"`` transposed convolution ((n-1)*s + k) is cropped to
  torch's window ``[padding, padding + (n-1)*s - 2*padding + k + output_padding)`` with ``tf.slice``,
  whose gradient is a ``Pad`` (a Python slice ``y[:, a:b]`` is a ``StridedSlice``, whose CPU
  gradient took a third of the 150x150 seed VAE's training step).
* ``BatchNorm2d``: torch's semantics rather than Keras': eps given explicitly (Keras' default is
  1e-3), momentum in torch's convention (new = (1-m)*old + m*batch; Keras' 0.99 means m=0.01),
  normalisation by the biased batch variance but the running variance updated with the unbiased
  one (n/(n-1)), as torch does. In training, 4-D and 5-D inputs go through TensorFlow's fused
  batch norm (one kernel forward and one backward, like torch's; it returns the unbiased batch
  variance torch's running update uses); other ranks, and inference, use the written-out formula.
* ``LeakyReLU`` defaults to torch's slope 0.01 (Keras' default is 0.3).
"""

from __future__ import annotations

from typing import Iterator

import keras
import numpy as np
from keras import ops

from core import init
from core.errors import batch_too_small_message, require_batch_statistics
from core.layouts import rule


class TorchLayer(keras.layers.Layer):
    """A Keras layer mirroring one torch module; leaves report their parameters."""

    def torch_params(self) -> dict[str, tuple[keras.Variable, str]]:
        """{torch parameter suffix: (Keras variable, layout rule name)}."""
        return {}

    def init_rules(self) -> dict[str, init.Init]:
        """{torch name relative to this layer: initial-weight rule} (:mod:`core.init`), for its
        ``torch_params()`` and optionally overrides of its children's; see ``keras_impl/init.py``."""
        return {}


def torch_shape(variable: keras.Variable, layout: str) -> tuple[int, ...]:
    """The torch (canonical) shape of a mirrored variable."""
    return tuple(rule(layout).to_torch(np.empty(tuple(variable.shape), np.uint8)).shape)


def _kernel_and_bias(layer: keras.layers.Layer, kernel_rule: str) -> dict[str, tuple[keras.Variable, str]]:
    """torch's ``weight``/``bias`` of a wrapped Conv/Dense layer."""
    params = {"weight": (layer.kernel, kernel_rule)}
    if layer.use_bias:
        params["bias"] = (layer.bias, "identity")
    return params


def _default_init(layer: TorchLayer) -> dict[str, init.Init]:
    """torch's Linear/Conv ``reset_parameters`` for a layer whose ``torch_params`` are weight (+ bias)."""
    params = layer.torch_params()
    return init.weight_and_bias(torch_shape(*params["weight"]), bias="bias" in params)


class Conv2d(TorchLayer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.pad = in_channels, padding
        self.conv = keras.layers.Conv2D(out_channels, kernel_size, strides=stride, padding="valid", use_bias=bias)

    def call(self, x, training=None):
        p = self.pad
        if p:
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        return self.conv(x)

    def torch_params(self):
        return _kernel_and_bias(self.conv, "conv2d")

    def init_rules(self):
        return _default_init(self)


class ConvTranspose2d(TorchLayer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, output_padding: int = 0, bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        if output_padding > padding:
            raise ValueError("ConvTranspose2d: output_padding > padding is not supported")
        self.in_channels, self.kernel, self.stride = in_channels, kernel_size, stride
        self.pad, self.output_padding = padding, output_padding
        self.conv = keras.layers.Conv2DTranspose(out_channels, kernel_size, strides=stride, padding="valid",
                                                 use_bias=bias)

    def call(self, x, training=None):
        y = self.conv(x)
        h, w = x.shape[1], x.shape[2]
        p, k, s, op = self.pad, self.kernel, self.stride, self.output_padding
        out_h, out_w = (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op
        return _crop(y, (p, p), (out_h, out_w))

    def torch_params(self):
        return _kernel_and_bias(self.conv, "conv_transpose2d")

    def init_rules(self):
        return _default_init(self)


def _crop(y, start: tuple[int, ...], size: tuple[int, ...]):
    """``y[:, start[0] : start[0] + size[0], ..., :]`` (every axis but the batch and the channels)
    as one ``tf.slice``: its gradient is a ``Pad``, where a Python slice's (``StridedSliceGrad``)
    is a slow generic kernel on the CPU."""
    import tensorflow as tf

    return tf.slice(y, [0, *start, 0], [-1, *size, -1])


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (value,) * 3 if isinstance(value, int) else tuple(value)


class Conv3d(TorchLayer):
    """torch.nn.Conv3d on (B, T, H, W, C): explicit symmetric zero padding, then a "valid" Conv3D."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.pad = in_channels, _triple(padding)
        self.conv = keras.layers.Conv3D(out_channels, _triple(kernel_size), strides=_triple(stride), padding="valid",
                                        use_bias=bias)

    def call(self, x, training=None):
        if any(self.pad):
            x = ops.pad(x, [[0, 0], *([p, p] for p in self.pad), [0, 0]])
        return self.conv(x)

    def torch_params(self):
        return _kernel_and_bias(self.conv, "conv3d")

    def init_rules(self):
        return _default_init(self)


class ConvTranspose3d(TorchLayer):
    """torch.nn.ConvTranspose3d on (B, T, H, W, C): the full "valid" transposed convolution cropped
    to torch's window per axis (as :class:`ConvTranspose2d`; no output_padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.kernel, self.stride, self.pad = _triple(kernel_size), _triple(stride), _triple(padding)
        self.conv = keras.layers.Conv3DTranspose(out_channels, self.kernel, strides=self.stride, padding="valid",
                                                 use_bias=bias)

    def call(self, x, training=None):
        y = self.conv(x)
        out = [(n - 1) * s - 2 * p + k for n, k, s, p in zip(x.shape[1:4], self.kernel, self.stride, self.pad)]
        return _crop(y, self.pad, out)

    def torch_params(self):
        return _kernel_and_bias(self.conv, "conv_transpose3d")

    def init_rules(self):
        return _default_init(self)


class Linear(TorchLayer):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.in_features = in_features
        self.dense = keras.layers.Dense(out_features, use_bias=bias)

    def call(self, x, training=None):
        return self.dense(x)

    def torch_params(self):
        return _kernel_and_bias(self.dense, "linear")

    def init_rules(self):
        return _default_init(self)


#: input rank -> the data format of TensorFlow's fused batch norm (channels last)
_FUSED_FORMATS = {4: "NHWC", 5: "NDHWC"}


class BatchNorm2d(TorchLayer):
    """torch.nn.BatchNorm2d over the last (channel) axis; see the module docstring."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        c = (num_features,)
        self.gamma = self.add_weight(shape=c, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=c, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=c, initializer="zeros", trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape=c, initializer="ones", trainable=False, name="moving_variance")

    def call(self, x, training=None):
        if training and len(x.shape) in _FUSED_FORMATS:
            self._require_batch_statistics(x)
            return self._fused_training(x)
        if training:
            self._require_batch_statistics(x)
            axes = tuple(range(len(x.shape) - 1))
            mean = ops.mean(x, axis=axes)
            var = ops.var(x, axis=axes)
            n = ops.cast(ops.size(x) // self.num_features, x.dtype)
            m = self.momentum
            self.moving_mean.assign((1.0 - m) * self.moving_mean + m * mean)
            self.moving_variance.assign((1.0 - m) * self.moving_variance + m * var * n / (n - 1.0))
        else:
            mean, var = self.moving_mean, self.moving_variance
        return (x - mean) * ops.rsqrt(var + self.eps) * self.gamma + self.beta

    def _fused_training(self, x):
        """Training mode through TensorFlow's fused batch norm: normalised by the biased batch
        variance; the running variance follows the unbiased one the op returns (torch's rule)."""
        import tensorflow as tf

        y, mean, var = tf.compat.v1.nn.fused_batch_norm(x, self.gamma, self.beta, epsilon=self.eps, is_training=True,
                                                        data_format=_FUSED_FORMATS[len(x.shape)])
        m = self.momentum
        self.moving_mean.assign((1.0 - m) * self.moving_mean + m * mean)
        self.moving_variance.assign((1.0 - m) * self.moving_variance + m * var)
        return y

    @staticmethod
    def _require_batch_statistics(x) -> None:
        """One value per channel: the same :class:`core.errors.BatchTooSmall` as torch (Keras would
        write NaN into the moving variance); checked in the graph when the batch size is symbolic."""
        BatchNorm2d._require_batch_statistics_sized(x, x.shape[0], x.shape[1], x.shape[2])

    @staticmethod
    def _require_batch_statistics_sized(x, b, h, w) -> None:
        require_batch_statistics(b, h, w)
        if b is None and h is not None and w is not None and h * w == 1:
            import tensorflow as tf

            tf.debugging.assert_greater(tf.shape(x)[0], 1, message=batch_too_small_message("1", h, w))

    def torch_params(self):
        return {
            "weight": (self.gamma, "identity"),
            "bias": (self.beta, "identity"),
            "running_mean": (self.moving_mean, "identity"),
            "running_var": (self.moving_variance, "identity"),
        }

    def init_rules(self):
        return init.batch_norm()


class BatchNorm3d(BatchNorm2d):
    """torch.nn.BatchNorm3d over the last (channel) axis of (B, T, H, W, C); the statistics are
    taken over the batch, the frames and the pixels, as :class:`BatchNorm2d`'s over all but the last axis."""

    @staticmethod
    def _require_batch_statistics(x) -> None:
        b, t, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
        BatchNorm2d._require_batch_statistics_sized(x, b, None if t is None or h is None else t * h, w)


class LeakyReLU(TorchLayer):
    def __init__(self, negative_slope: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = negative_slope

    def call(self, x, training=None):
        return ops.leaky_relu(x, self.negative_slope)


class ReLU(TorchLayer):
    def call(self, x, training=None):
        return ops.relu(x)


class MaxPool2d(TorchLayer):
    """torch.nn.MaxPool2d(kernel_size) with torch's default stride = kernel_size, no padding."""

    def __init__(self, kernel_size: int, **kwargs):
        super().__init__(**kwargs)
        self.pool = keras.layers.MaxPooling2D(kernel_size, strides=kernel_size, padding="valid")

    def call(self, x, training=None):
        return self.pool(x)


class LayerNorm(TorchLayer):
    """torch.nn.LayerNorm over the last axis, eps given explicitly (Keras' default is 1e-3)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.LayerNormalization(axis=-1, epsilon=eps)

    def call(self, x, training=None):
        return self.norm(x)

    def torch_params(self):
        return {"weight": (self.norm.gamma, "identity"), "bias": (self.norm.beta, "identity")}

    def init_rules(self):
        return init.layer_norm()


class Sigmoid(TorchLayer):
    def call(self, x, training=None):
        return ops.sigmoid(x)


class Sequential(TorchLayer):
    """torch.nn.Sequential: children are named "0", "1", ... in the checkpoint."""

    def __init__(self, *layers: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.children_list = list(layers)

    def call(self, x, training=None):
        for layer in self.children_list:
            x = layer(x, training=training)
        return x


class ModuleList(Sequential):
    """torch.nn.ModuleList: indexed children ("0", "1", ...); the owner decides how to call them."""

    def call(self, x, training=None):  # pragma: no cover - never called as a whole
        raise TypeError("ModuleList is not callable; iterate over children_list")


def torch_named_layers(layer: keras.layers.Layer, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    """(torch name prefix, layer) for ``layer`` and every layer under it, outer layers first.

    Containers are walked like torch's ``named_modules``: :class:`Sequential` children by index
    (the container itself is not yielded: it holds no parameters), other layers by their public
    attribute names (the same names the torch twin uses). Below a :class:`TorchLayer` only
    TorchLayer children are walked: a leaf's wrapped Keras layer is reported through the leaf's
    ``torch_params()``.
    """
    if isinstance(layer, Sequential):
        for i, child in enumerate(layer.children_list):
            yield from torch_named_layers(child, f"{prefix}{i}.")
        return
    yield prefix, layer
    for name, value in vars(layer).items():  # composite layers: children by attribute name
        if name.startswith("_") or not isinstance(value, keras.layers.Layer):
            continue
        if isinstance(layer, TorchLayer) and not isinstance(value, TorchLayer):
            continue  # a leaf's wrapped Keras layer: already reported through torch_params()
        yield from torch_named_layers(value, f"{prefix}{name}.")


def torch_named_params(layer: keras.layers.Layer, prefix: str = "") -> Iterator[tuple[str, keras.Variable, str]]:
    """(torch name, Keras variable, layout rule) for every mirrored variable under ``layer``.

    Layers are visited by :func:`torch_named_layers`; a :class:`TorchLayer` reports its own
    parameters (``torch_params``) before its children's, like a torch module that owns both
    parameters and submodules.
    """
    for layer_prefix, sub in torch_named_layers(layer, prefix):
        if isinstance(sub, TorchLayer):
            for suffix, (variable, layout) in sub.torch_params().items():
                yield layer_prefix + suffix, variable, layout
