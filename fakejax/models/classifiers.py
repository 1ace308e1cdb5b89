"""Real-vs-fake classifiers: one logit per image (positive: real), any input size."""

import flax.linen as nn
import jax


class AlexNetClassifier(nn.Module):
  """AlexNet's layout (Krizhevsky et al. 2012) scaled to small images.

  Five convolutions (widths `features`) with ReLU, 2x2 max-pooling after the first,
  second and fifth; two dense hidden layers with dropout; one logit. 3x3 and 5x5 kernels
  at stride 1 stand in for AlexNet's 11x11/4 first layer, made for 224x224 inputs.
  """
  features: tuple[int, ...] = (64, 192, 384, 256, 256)
  hidden: int = 512
  dropout_rate: float = 0.5

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    kernels = (5, 5, 3, 3, 3)
    for index, (features, kernel) in enumerate(zip(self.features, kernels)):
      x = nn.relu(nn.Conv(features, (kernel, kernel), padding='SAME')(x))
      if index in (0, 1, 4):
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    for _ in range(2):
      x = nn.relu(nn.Dense(self.hidden)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(1)(x)[:, 0]


class SequentialCNN(nn.Module):
  """The small Keras Sequential CNN of the real-vs-synthetic faces study.

  Two 3x3 VALID convolutions at the first width, max-pooling, BatchNorm; two at the
  second, pooling, BatchNorm, dropout; one at the third, pooling, BatchNorm, dropout;
  a dense hidden layer with BatchNorm and dropout; one logit. Inputs of 28x28 and up.
  """
  features: tuple[int, ...] = (64, 128, 256)
  hidden: int = 128
  dropout_rate: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    norm = lambda: nn.BatchNorm(use_running_average=not train)
    convs_per_width = (2, 2, 1)
    for index, (features, repeats) in enumerate(zip(self.features, convs_per_width)):
      for _ in range(repeats):
        x = nn.relu(nn.Conv(features, (3, 3), padding='VALID')(x))
      x = norm()(nn.max_pool(x, (2, 2), strides=(2, 2)))
      if index > 0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(norm()(x))
    return nn.Dense(1)(x)[:, 0]


# Classifier architectures by the name a config gives them; each takes
# (features, hidden, dropout_rate).
CLASSIFIER_ARCHITECTURES = {'alexnet': AlexNetClassifier, 'sequential_cnn': SequentialCNN}
