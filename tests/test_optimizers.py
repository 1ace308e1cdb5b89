"""The optimiser builder's options: a cosine decay of the learning rate, gradient clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fakejax.train import optimizers

ADAM = dict(learning_rate=1e-2, b1=0.9, b2=0.999)


def updates_of(tx: optax.GradientTransformation, gradients: list[float]) -> list[float]:
  """The update of one scalar parameter for each gradient in turn."""
  params = {'w': jnp.zeros(())}
  state, updates = tx.init(params), []
  for gradient in gradients:
    update, state = tx.update({'w': jnp.asarray(gradient)}, state, params)
    updates.append(float(update['w']))
  return updates


def test_cosine_decay_halves_the_step_midway_and_ends_at_zero():
  constant = updates_of(optimizers.build_optimizer(**ADAM), [1.0] * 11)
  decayed = updates_of(optimizers.build_optimizer(**ADAM, decay_steps=10), [1.0] * 11)
  assert decayed[0] == pytest.approx(constant[0])
  assert decayed[5] == pytest.approx(constant[5] / 2, rel=1e-4)
  assert decayed[10] == 0.0 and constant[10] != 0.0


def test_clipping_leaves_the_steps_after_a_huge_gradient_as_if_it_were_normal():
  # Unclipped, one gradient of 1e4 fills Adam's moments for many steps after it.
  gradients = [1.0, 1e4, 1.0, 1.0]
  steady = updates_of(optimizers.build_optimizer(**ADAM), [1.0] * 4)
  plain = updates_of(optimizers.build_optimizer(**ADAM), gradients)
  clipped = updates_of(optimizers.build_optimizer(**ADAM, clip_global_norm=1.0), gradients)
  np.testing.assert_allclose(clipped, steady, rtol=1e-5)
  assert abs(plain[3]) < 0.7 * abs(steady[3])


def test_options_off_keep_the_state_of_plain_adam():
  plain = optimizers.build_optimizer(**ADAM).init({'w': jnp.zeros(())})
  off = optimizers.from_config({**ADAM, 'decay_steps': 0, 'clip_global_norm': 0.0})
  assert jax.tree.structure(off.init({'w': jnp.zeros(())})) == jax.tree.structure(plain)
