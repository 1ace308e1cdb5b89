"""The one optimiser builder: Adam (AdamW with weight decay), optionally with a cosine decay
of the learning rate, gradient clipping and frozen modules."""

from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import optax

from fakejax.models import pretrained

# In a `frozen` list: every top-level module but the head (a frozen pretrained base).
FROZEN_BACKBONE = 'backbone'


def frozen_labels(frozen_prefixes: tuple[str, ...]):
  """params -> 'frozen' or 'trained' per leaf, by the top-level module's name prefix."""
  def is_frozen(name: str) -> bool:
    if FROZEN_BACKBONE in frozen_prefixes and not name.startswith(pretrained.HEAD_PREFIX):
      return True
    return name.startswith(frozen_prefixes)

  def labels(params: dict) -> dict:
    unused = [p for p in frozen_prefixes if p != FROZEN_BACKBONE
              and not any(name.startswith(p) for name in params)]
    if unused:
      raise ValueError(f"Config key 'classifier.frozen' has {unused}, which name no module; "
                       f'top-level modules: {sorted(params)}.')
    return {name: jax.tree.map(lambda _, frozen=is_frozen(name):
                               'frozen' if frozen else 'trained', subtree)
            for name, subtree in params.items()}
  return labels


def build_optimizer(*, learning_rate: float, b1: float, b2: float, weight_decay: float = 0.0,
                    decay_steps: int = 0, clip_global_norm: float = 0.0,
                    frozen: tuple[str, ...] = ()) -> optax.GradientTransformation:
  """Adam (AdamW when `weight_decay` > 0) on every parameter but those of `frozen` modules.

  Both DCGAN papers train both players with Adam; the classifiers' studies did too.
  `decay_steps` > 0: the learning rate follows a cosine from its value to 0 over that many
  steps. `clip_global_norm` > 0: gradients are first scaled down to at most that global
  norm. Either one changes the optimiser state's structure, so both are off by default.
  """
  if decay_steps:
    learning_rate = optax.cosine_decay_schedule(learning_rate, decay_steps)
  if weight_decay:
    tx = optax.adamw(learning_rate, b1=b1, b2=b2, weight_decay=weight_decay)
  else:
    tx = optax.adam(learning_rate, b1=b1, b2=b2)
  if clip_global_norm:
    tx = optax.chain(optax.clip_by_global_norm(clip_global_norm), tx)
  if not frozen:
    return tx
  return optax.multi_transform({'trained': tx, 'frozen': optax.set_to_zero()},
                               frozen_labels(tuple(frozen)))


def from_config(optimizer: ml_collections.ConfigDict | Mapping[str, Any],
                frozen: tuple[str, ...] = ()) -> optax.GradientTransformation:
  """The optimiser of a config's `optimizer` group (learning_rate, b1, b2[, weight_decay,
  decay_steps, clip_global_norm])."""
  values = optimizer.to_dict() if isinstance(optimizer, ml_collections.ConfigDict) else optimizer
  return build_optimizer(**values, frozen=tuple(frozen))
