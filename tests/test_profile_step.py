"""The step profiler: XLA's trace of a train step, summed per compiled operation."""

import jax
import jax.numpy as jnp

from tests.conftest import load_tool

profile_step = load_tool('profile_step')


def test_operations_are_named_by_what_they_compute():
  x = jnp.ones((64, 8, 8, 16))
  def step(x):
    y = jax.lax.conv_general_dilated(x, jnp.ones((3, 3, 16, 16)), (1, 1), 'SAME',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return jnp.transpose(jnp.tanh(y), (3, 1, 2, 0)), jnp.sum(y * y)
  ops = profile_step.operations(jax.jit(step).lower(x).compile().as_text())
  kinds = {op.kind: op.where for op in ops.values()}
  assert kinds['convolution'] == 'conv_general_dilated'  # JAX's name, without the jit().
  assert kinds['reduction'] == 'reduce_sum'
  assert kinds['transpose + elementwise'] == 'transpose'  # tanh fused into the transpose.
  assert 'parameter' in kinds


def test_a_tiny_profile_lists_the_steps_operations_with_their_time():
  result = profile_step.profile('sequential_cnn', batch_size=8, steps=2)
  rows = result['operations']
  assert result['step_ms'] > 0 and rows
  assert all(row['ms_per_step'] > 0 for row in rows)
  assert [row['ms_per_step'] for row in rows] == sorted((row['ms_per_step'] for row in rows),
                                                        reverse=True)
  table = profile_step.markdown(result, top=5)
  assert f"| {rows[0]['operation']} | {rows[0]['kind']} |" in table
  assert len([line for line in table.splitlines() if line.startswith('| ') and
              'ms per step' not in line]) == len(profile_step.by_kind(result)) + min(5, len(rows))
  kinds = profile_step.kinds_table([result, {**result, 'model': 'again'}]).splitlines()
  assert kinds[0] == '| kind | `sequential_cnn` | `again` |'
  assert kinds[2] == f"| step, ms | {result['step_ms']:.0f} | {result['step_ms']:.0f} |"
