"""Real-vs-fake classifiers of any input size, by the name a config gives them.

Every classifier returns logits [N, outputs]: one logit of "real" (binary cross-entropy)
or two, fake and real (2-way cross-entropy); `train.classifier_steps` reads both.
"""

import flax.linen as nn
import jax

from fakejax.models.layers import ValidConv, max_pool_2x2

HEAD_POOLINGS = ('average', 'flatten')


def head(x: jax.Array, *, hidden: int, dropout_rate: float, outputs: int, pooling: str,
         train: bool) -> jax.Array:
  """Pooling, an optional dense ReLU layer, dropout and the output layer.

  Covers the studies' heads: Keras's Flatten, Dense 512 ReLU, Dropout, softmax
  (pooling='flatten', hidden=512, outputs=2) and global pooling, Dropout, Dense 1
  (pooling='average', hidden=0, outputs=1); PyTorch's Linear 512, ReLU, Dropout, Linear 2.
  Called inside a module's compact method, so that its layers are that module's top-level
  `head_hidden` and `head`, the names a config freezes or regularises by.
  """
  x = x.mean(axis=(1, 2)) if pooling == 'average' else x.reshape(x.shape[0], -1)
  if hidden:
    x = nn.relu(nn.Dense(hidden, name='head_hidden')(x))
  x = nn.Dropout(dropout_rate, deterministic=not train)(x)
  return nn.Dense(outputs, name='head')(x)


class AlexNetClassifier(nn.Module):
  """AlexNet's layout (Krizhevsky et al. 2012) scaled to small images.

  Five convolutions (widths `features`) with ReLU, 2x2 max-pooling after the first,
  second and fifth; two dense hidden layers with dropout; one logit. 3x3 and 5x5 kernels
  at stride 1 stand in for AlexNet's 11x11/4 first layer, made for 224x224 inputs.
  """
  features: tuple[int, ...] = (64, 192, 384, 256, 256)
  hidden: int = 512
  dropout_rate: float = 0.5
  outputs: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    kernels = (5, 5, 3, 3, 3)
    for index, (features, kernel) in enumerate(zip(self.features, kernels)):
      x = nn.relu(nn.Conv(features, (kernel, kernel), padding='SAME')(x))
      if index in (0, 1, 4):
        x = max_pool_2x2(x)
    x = x.reshape(x.shape[0], -1)
    for _ in range(2):
      x = nn.relu(nn.Dense(self.hidden)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.outputs)(x)


class SequentialCNN(nn.Module):
  """The small Keras Sequential CNN of the real-vs-synthetic faces study.

  Two 3x3 VALID convolutions at the first width, max-pooling, BatchNorm; two at the
  second, pooling, BatchNorm, dropout; one at the third, pooling, BatchNorm, dropout;
  a dense hidden layer with BatchNorm and dropout; one logit. Inputs of 28x28 and up.
  """
  features: tuple[int, ...] = (64, 128, 256)
  hidden: int = 128
  dropout_rate: float = 0.25
  outputs: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    norm = lambda: nn.BatchNorm(use_running_average=not train)
    convs_per_width = (2, 2, 1)
    convs = 0
    for index, (features, repeats) in enumerate(zip(self.features, convs_per_width)):
      for _ in range(repeats):
        # Named as nn.Conv would be, so that checkpoints and `frozen` names stay valid.
        x = nn.relu(ValidConv(features, (3, 3), name=f'Conv_{convs}')(x))
        convs += 1
      x = norm()(max_pool_2x2(x))
      if index > 0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(norm()(x))
    return nn.Dense(self.outputs)(x)


class PatchCNN(nn.Module):
  """A patch classifier (after Chai et al. 2020): the image's logit is the mean of the
  logits of its patches, each seen through a small receptive field.

  3x3 VALID convolutions (widths `features`) with BatchNorm and ReLU see a patch of
  2 * len(features) + 1 pixels square; a hidden 1x1 layer with dropout and a 1x1 output
  layer score every patch. Small patches cannot read an image's content, only its local
  texture, where generators leave their traces.
  """
  features: tuple[int, ...] = (32, 64, 64)
  hidden: int = 64
  dropout_rate: float = 0.25
  outputs: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for index, features in enumerate(self.features):
      x = ValidConv(features, (3, 3), use_bias=False, name=f'Conv_{index}')(x)
      x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
    # Dense layers act on the last axis: 1x1 convolutions over the map of patches.
    x = nn.relu(nn.Dense(self.hidden, name='head_hidden')(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    patch_logits = nn.Dense(self.outputs, name='head')(x)
    return patch_logits.mean(axis=(1, 2))


def torch_padding(kernel: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """PyTorch's symmetric padding of k // 2, which torchvision's weights were trained with.

  XLA's 'SAME' pads strided layers asymmetrically on even sizes, shifting every window.
  """
  return ((kernel // 2, kernel // 2),) * 2


class ResidualBlock(nn.Module):
  """ResNet's basic block (two 3x3) or bottleneck (1x1, 3x3, 1x1 with 4x expansion).

  As torchvision's v1.5: a bottleneck strides in its 3x3 convolution.
  """
  features: int
  strides: int
  bottleneck: bool
  train: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    norm = lambda **kw: nn.BatchNorm(use_running_average=not self.train, momentum=0.9, **kw)
    out_features = self.features * (4 if self.bottleneck else 1)
    if self.bottleneck:
      layers = [(self.features, 1, 1), (self.features, 3, self.strides), (out_features, 1, 1)]
    else:
      layers = [(self.features, 3, self.strides), (out_features, 3, 1)]
    y = x
    for index, (features, kernel, strides) in enumerate(layers):
      y = nn.Conv(features, (kernel, kernel), strides=strides, padding=torch_padding(kernel),
                  use_bias=False)(y)
      last = index == len(layers) - 1
      # The last norm of a block starts at zero: each block begins as the identity.
      y = norm(scale_init=nn.initializers.zeros if last else nn.initializers.ones)(y)
      if not last:
        y = nn.relu(y)
    if x.shape[-1] != out_features or self.strides != 1:
      x = nn.Conv(out_features, (1, 1), strides=self.strides, use_bias=False, name='projection')(x)
      x = norm(name='projection_norm')(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet (He et al. 2016) for any input size, layer for layer as torchvision's.

  Images of 64 pixels and up get ImageNet's stem (7x7/2 convolution, 3x3/2 max-pool);
  smaller ones a 3x3/1 stem without pooling, so 28x28 inputs keep a 4x4 map at the end.
  Top-level modules are named `stem_*`, `stage<i>_block<j>` and `head*`, the prefixes a
  config freezes by; `tools/convert_weights.py` converts torchvision's weights to them.
  """
  stage_sizes: tuple[int, ...]
  bottleneck: bool
  features: tuple[int, ...] = (64, 128, 256, 512)
  hidden: int = 0  # Width of a dense hidden layer in the head; 0: none.
  dropout_rate: float = 0.0
  outputs: int = 1
  pooling: str = 'average'

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    small = min(x.shape[1:3]) < 64
    kernel = 3 if small else 7
    x = nn.Conv(self.features[0], (kernel, kernel), strides=1 if small else 2,
                padding=torch_padding(kernel), use_bias=False, name='stem_conv')(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name='stem_norm')(x))
    if not small:
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=torch_padding(3))
    for stage, (num_blocks, features) in enumerate(zip(self.stage_sizes, self.features)):
      for block in range(num_blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = ResidualBlock(features, strides, self.bottleneck, train,
                          name=f'stage{stage + 1}_block{block + 1}')(x)
    return head(x, hidden=self.hidden, dropout_rate=self.dropout_rate, outputs=self.outputs,
                pooling=self.pooling, train=train)


def resnet18(**kwargs) -> ResNet:
  return ResNet(stage_sizes=(2, 2, 2, 2), bottleneck=False, **kwargs)


def resnet50(**kwargs) -> ResNet:
  return ResNet(stage_sizes=(3, 4, 6, 3), bottleneck=True, **kwargs)

