"""Inverted-residual ImageNet backbones: MobileNetV2, MobileNetV3-Large, EfficientNet-B0.

Layer for layer as Keras Applications (`include_top=False`), whose layer names they keep
as their top-level module names: Keras weights convert by name
(`tools/convert_weights.py`), and a config freezes by the same prefixes a Keras user
knows ('Conv1', 'block_1_', ... ; 'conv', 'expanded_conv_1_', ... ; 'stem_', 'block2', ...).
Inputs are in [-1, 1], the project's model range; what Keras computes in its own
preprocessing layers happens here (EfficientNet's normalisation) or is already done.
Any input size works; a head from `classifiers.head` follows the last feature map.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from fakejax.models.classifiers import head
from fakejax.models.layers import DepthwiseConv

KERAS_BATCH_NORM_EPSILON = 1e-3
KERAS_NORMALIZATION_EPSILON = 1e-7  # keras.backend.epsilon(), the floor of sqrt(variance).


def make_divisible(value: float, divisor: int = 8) -> int:
  """Keras's rounding of layer widths to multiples of 8, never down by more than 10%."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * value else rounded


def hard_sigmoid(x: jax.Array) -> jax.Array:
  return jax.nn.relu6(x + 3.0) / 6.0


class _KerasLayers:
  """Keras's layers by name, created inside the calling module's compact method."""

  def __init__(self, train: bool, batch_norm_momentum: float):
    self.train = train
    self.momentum = batch_norm_momentum

  def conv(self, x: jax.Array, features: int, kernel: int, name: str, strides: int = 1,
           use_bias: bool = False) -> jax.Array:
    # 'SAME' equals Keras's ZeroPadding2D(correct_pad) + 'valid' for its strided layers.
    return nn.Conv(features, (kernel, kernel), strides=strides, padding='SAME',
                   use_bias=use_bias, name=name)(x)

  def depthwise(self, x: jax.Array, kernel: int, strides: int, name: str) -> jax.Array:
    return DepthwiseConv((kernel, kernel), strides=(strides, strides), name=name)(x)

  def norm(self, x: jax.Array, name: str) -> jax.Array:
    return nn.BatchNorm(use_running_average=not self.train, momentum=self.momentum,
                        epsilon=KERAS_BATCH_NORM_EPSILON, name=name)(x)


class MobileNetV2(nn.Module):
  """MobileNetV2 (Sandler et al. 2018), width 1.0: ReLU6 inverted residuals, 1280 features."""
  hidden: int = 0
  dropout_rate: float = 0.0
  outputs: int = 1
  pooling: str = 'average'

  # (expansion, output width, repeats, first stride) per stage.
  STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    layers = _KerasLayers(train, batch_norm_momentum=0.999)
    x = jax.nn.relu6(layers.norm(layers.conv(x, 32, 3, 'Conv1', strides=2), 'bn_Conv1'))
    block_id = 0
    for expansion, features, repeats, first_stride in self.STAGES:
      for repeat in range(repeats):
        x = self._block(layers, x, expansion, features, first_stride if repeat == 0 else 1,
                        block_id)
        block_id += 1
    x = jax.nn.relu6(layers.norm(layers.conv(x, 1280, 1, 'Conv_1'), 'Conv_1_bn'))
    return head(x, hidden=self.hidden, dropout_rate=self.dropout_rate, outputs=self.outputs,
                pooling=self.pooling, train=train)

  @staticmethod
  def _block(layers: _KerasLayers, inputs: jax.Array, expansion: int, features: int,
             strides: int, block_id: int) -> jax.Array:
    prefix = f'block_{block_id}_' if block_id else 'expanded_conv_'
    x = inputs
    if block_id:
      x = layers.conv(x, expansion * inputs.shape[-1], 1, f'{prefix}expand')
      x = jax.nn.relu6(layers.norm(x, f'{prefix}expand_BN'))
    x = layers.depthwise(x, 3, strides, f'{prefix}depthwise')
    x = jax.nn.relu6(layers.norm(x, f'{prefix}depthwise_BN'))
    x = layers.norm(layers.conv(x, make_divisible(features), 1, f'{prefix}project'),
                    f'{prefix}project_BN')
    if strides == 1 and inputs.shape[-1] == x.shape[-1]:
      x = inputs + x
    return x


class MobileNetV3Large(nn.Module):
  """MobileNetV3-Large (Howard et al. 2019): hard-swish, squeeze-excite, 960 features.

  Keras's top (its 1280-wide 1x1 convolution after pooling) belongs to the ImageNet
  classifier and is replaced by the head, as `include_top=False` does.
  """
  hidden: int = 0
  dropout_rate: float = 0.0
  outputs: int = 1
  pooling: str = 'average'

  # (expansion, output width, kernel, stride, squeeze-excite, hard-swish) per block.
  BLOCKS = ((1, 16, 3, 1, False, False), (4, 24, 3, 2, False, False),
            (3, 24, 3, 1, False, False), (3, 40, 5, 2, True, False), (3, 40, 5, 1, True, False),
            (3, 40, 5, 1, True, False), (6, 80, 3, 2, False, True), (2.5, 80, 3, 1, False, True),
            (2.3, 80, 3, 1, False, True), (2.3, 80, 3, 1, False, True),
            (6, 112, 3, 1, True, True), (6, 112, 3, 1, True, True), (6, 160, 5, 2, True, True),
            (6, 160, 5, 1, True, True), (6, 160, 5, 1, True, True))

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    layers = _KerasLayers(train, batch_norm_momentum=0.999)
    x = jax.nn.hard_swish(layers.norm(layers.conv(x, 16, 3, 'conv', strides=2), 'conv_bn'))
    for block_id, block in enumerate(self.BLOCKS):
      x = self._block(layers, x, block_id, *block)
    x = layers.norm(layers.conv(x, make_divisible(x.shape[-1] * 6), 1, 'conv_1'), 'conv_1_bn')
    x = jax.nn.hard_swish(x)
    return head(x, hidden=self.hidden, dropout_rate=self.dropout_rate, outputs=self.outputs,
                pooling=self.pooling, train=train)

  @staticmethod
  def _block(layers: _KerasLayers, inputs: jax.Array, block_id: int, expansion: float,
             features: int, kernel: int, strides: int, squeeze_excite: bool,
             use_hard_swish: bool) -> jax.Array:
    activation = jax.nn.hard_swish if use_hard_swish else jax.nn.relu
    prefix = f'expanded_conv_{block_id}_' if block_id else 'expanded_conv_'
    expanded = make_divisible(inputs.shape[-1] * expansion)
    x = inputs
    if block_id:
      x = activation(layers.norm(layers.conv(x, expanded, 1, f'{prefix}expand'),
                                 f'{prefix}expand_bn'))
    x = layers.depthwise(x, kernel, strides, f'{prefix}depthwise')
    x = activation(layers.norm(x, f'{prefix}depthwise_bn'))
    if squeeze_excite:
      squeezed = x.mean(axis=(1, 2), keepdims=True)
      squeezed = nn.relu(layers.conv(squeezed, make_divisible(expanded * 0.25), 1,
                                     f'{prefix}squeeze_excite_conv', use_bias=True))
      x = x * hard_sigmoid(layers.conv(squeezed, expanded, 1,
                                       f'{prefix}squeeze_excite_conv_1', use_bias=True))
    x = layers.norm(layers.conv(x, features, 1, f'{prefix}project'), f'{prefix}project_bn')
    if strides == 1 and inputs.shape[-1] == features:
      x = inputs + x
    return x


class EfficientNetB0(nn.Module):
  """EfficientNet-B0 (Tan & Le 2019): swish MBConv blocks with squeeze-excite, 1280 features.

  The input is normalised by the `normalization` statistics (Keras's Normalization layer,
  kept in `batch_stats` so that they are never trained), applied to pixels in [0, 1].
  Stochastic depth drops residual branches in training, at rates rising to
  `drop_connect_rate`.
  """
  hidden: int = 0
  dropout_rate: float = 0.0
  outputs: int = 1
  pooling: str = 'average'
  drop_connect_rate: float = 0.2

  # (kernel, repeats, input width, output width, expansion, first stride) per stage.
  STAGES = ((3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2),
            (3, 3, 40, 80, 6, 2), (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2),
            (3, 1, 192, 320, 6, 1))

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    layers = _KerasLayers(train, batch_norm_momentum=0.99)
    channels = x.shape[-1]
    statistics = self.variable(
        'batch_stats', 'normalization',
        lambda: {'mean': jnp.zeros(channels), 'var': jnp.ones(channels)}).value
    pixels = (x + 1.0) / 2.0
    x = (pixels - statistics['mean']) / jnp.maximum(jnp.sqrt(statistics['var']),
                                                    KERAS_NORMALIZATION_EPSILON)
    x = jax.nn.swish(layers.norm(layers.conv(x, 32, 3, 'stem_conv', strides=2), 'stem_bn'))
    num_blocks = sum(stage[1] for stage in self.STAGES)
    block_index = 0
    for stage, (kernel, repeats, features_in, features_out, expansion, first_stride) in (
        enumerate(self.STAGES)):
      for repeat in range(repeats):
        x = self._block(
            layers, x, f'block{stage + 1}{chr(ord("a") + repeat)}_', kernel,
            features_in if repeat == 0 else features_out, features_out, expansion,
            first_stride if repeat == 0 else 1,
            self.drop_connect_rate * block_index / num_blocks, train)
        block_index += 1
    x = jax.nn.swish(layers.norm(layers.conv(x, 1280, 1, 'top_conv'), 'top_bn'))
    return head(x, hidden=self.hidden, dropout_rate=self.dropout_rate, outputs=self.outputs,
                pooling=self.pooling, train=train)

  @staticmethod
  def _block(layers: _KerasLayers, inputs: jax.Array, prefix: str, kernel: int,
             features_in: int, features_out: int, expansion: int, strides: int,
             drop_rate: float, train: bool) -> jax.Array:
    expanded = features_in * expansion
    x = inputs
    if expansion != 1:
      x = jax.nn.swish(layers.norm(layers.conv(x, expanded, 1, f'{prefix}expand_conv'),
                                   f'{prefix}expand_bn'))
    x = layers.depthwise(x, kernel, strides, f'{prefix}dwconv')
    x = jax.nn.swish(layers.norm(x, f'{prefix}bn'))
    squeezed = x.mean(axis=(1, 2), keepdims=True)
    squeezed = jax.nn.swish(layers.conv(squeezed, max(1, int(features_in * 0.25)), 1,
                                        f'{prefix}se_reduce', use_bias=True))
    x = x * jax.nn.sigmoid(layers.conv(squeezed, expanded, 1, f'{prefix}se_expand',
                                       use_bias=True))
    x = layers.norm(layers.conv(x, features_out, 1, f'{prefix}project_conv'),
                    f'{prefix}project_bn')
    if strides == 1 and features_in == features_out:
      if drop_rate > 0:
        # Drops the whole residual branch of an example (Keras: noise_shape (N, 1, 1, 1)).
        x = nn.Dropout(drop_rate, broadcast_dims=(1, 2, 3), deterministic=not train)(x)
      x = inputs + x
    return x

