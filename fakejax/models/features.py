"""The feature network of the generator-quality metrics: a small Fashion-MNIST classifier.

There are no Inception weights here, so generated images are compared with reals in the
feature space of a classifier of the seen classes that the project trains itself
(`fakejax/train/feature_trainer.py`). Its features are the last hidden layer's.
"""

import flax.linen as nn
import jax


class FeatureClassifier(nn.Module):
  """Two 3x3 convolutions with 2x2 average pooling after each, a dense feature layer
  (ReLU) and the class logits; `features=True` returns the feature layer instead."""
  num_classes: int
  widths: tuple[int, int] = (32, 64)
  feature_dim: int = 64

  @nn.compact
  def __call__(self, images: jax.Array, *, features: bool = False) -> jax.Array:
    x = images
    for width in self.widths:
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Dense(self.feature_dim, name='features')(x.reshape(x.shape[0], -1)))
    return x if features else nn.Dense(self.num_classes, name='logits')(x)
