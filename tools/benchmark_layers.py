r"""Each rewritten layer of `fakejax.models.layers` against its textbook Flax layer.

  python tools/benchmark_layers.py                  # JAX's default device
  python tools/benchmark_layers.py --device=gpu --json=layers.json
  python tools/benchmark_layers.py --match='depthwise|max-pool'   # only these layers

For every layer shape the models use (batch 256 by default), the time of one forward pass
with both gradients (input and parameters), for the textbook layer (`nn.ConvTranspose`,
`nn.Conv`, `nn.max_pool`) and for its drop-in rewrite. Timings alternate between the two,
round by round, and medians are reported. Outputs and gradients of the two are compared
as well: the largest relative difference is printed beside the times.

The rewrites were made for XLA's CPU backend; this tells, per backend, which form wins.
Output: a Markdown table, and JSON.
"""

import argparse
import dataclasses
import json
import pathlib
import re
import statistics
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fakejax import runtime
from fakejax.models import layers


class Function(nn.Module):
  """A parameter-free layer, as a module."""
  fn: Callable[[jax.Array], jax.Array]

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fn(x)


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  input_hwc: tuple[int, int, int]
  textbook: nn.Module
  rewritten: nn.Module


def transposed(features: int, kernel: int, stride: int, **kw) -> tuple[nn.Module, nn.Module]:
  return (nn.ConvTranspose(features, (kernel, kernel), (stride, stride), padding='SAME', **kw),
          layers.SubPixelConvTranspose(features, (kernel, kernel), (stride, stride), **kw))


def strided(features: int, kernel: int, stride: int) -> tuple[nn.Module, nn.Module]:
  return (nn.Conv(features, (kernel, kernel), (stride, stride), padding='SAME'),
          layers.StridedConv(features, (kernel, kernel), (stride, stride)))


def depthwise(channels: int, kernel: int, stride: int) -> tuple[nn.Module, nn.Module]:
  return (nn.Conv(channels, (kernel, kernel), (stride, stride), padding='SAME',
                  feature_group_count=channels, use_bias=False),
          layers.DepthwiseConv((kernel, kernel), (stride, stride)))


# The layers as the models use them.
CASES = (
    Case('dcgan_tf G: 5x5/2 transposed, 128 -> 64', (7, 7, 128), *transposed(64, 5, 2,
                                                                            use_bias=False)),
    Case('dcgan_tf G: 5x5/2 transposed, 64 -> 1', (14, 14, 64), *transposed(1, 5, 2,
                                                                           use_bias=False)),
    Case('dcgan_radford G: 4x4/2 transposed, 256 -> 128', (7, 7, 256),
         *transposed(128, 4, 2, use_bias=False)),
    Case('dcgan_radford G: 4x4/2 transposed, 128 -> 1', (14, 14, 128), *transposed(1, 4, 2)),
    Case('autoencoder: 4x4/2 transposed, 64 -> 32', (7, 7, 64), *transposed(32, 4, 2)),
    Case('dcgan_tf D: 5x5/2 conv, 1 -> 64', (28, 28, 1), *strided(64, 5, 2)),
    Case('dcgan_tf D: 5x5/2 conv, 64 -> 128', (14, 14, 64), *strided(128, 5, 2)),
    Case('dcgan_radford D: 4x4/2 conv, 64 -> 128', (14, 14, 64), *strided(128, 4, 2)),
    Case('small map: 3x3 valid conv, 64 -> 128', (4, 4, 64),
         nn.Conv(128, (3, 3), padding='VALID'), layers.ValidConv(128, (3, 3))),
    Case('MobileNetV2: 3x3/1 depthwise, 96', (14, 14, 96), *depthwise(96, 3, 1)),
    Case('MobileNetV2: 3x3/2 depthwise, 144', (14, 14, 144), *depthwise(144, 3, 2)),
    Case('EfficientNet-B0: 5x5/1 depthwise, 240', (4, 4, 240), *depthwise(240, 5, 1)),
    Case('MobileNetV3: 3x3/1 depthwise, 576', (2, 2, 576), *depthwise(576, 3, 1)),
    Case('flow coupling: 3x3 conv, 2 -> 64', (14, 14, 2), nn.Conv(64, (3, 3)),
         layers.SameConv(64, (3, 3))),
    Case('flow coupling: 3x3 conv, 64 -> 4', (14, 14, 64), nn.Conv(4, (3, 3)),
         layers.SameConv(4, (3, 3))),
    Case('U-Net: 3x3 conv, 1 -> 16', (28, 28, 1), nn.Conv(16, (3, 3)),
         layers.SameConv(16, (3, 3))),
    Case('U-Net: GroupNorm, 8 groups, 16 channels', (28, 28, 16), nn.GroupNorm(8),
         layers.GroupNorm(8)),
    Case('CNN: 2x2 max-pool, 32', (28, 28, 32),
         Function(lambda x: nn.max_pool(x, (2, 2), (2, 2))), Function(layers.max_pool_2x2)),
)


def forward_and_gradients(module: nn.Module) -> Callable:
  """(params, x, cotangent) -> (output, d params, d x): one forward and both gradients."""
  def run(params, x, cotangent):
    y, vjp = jax.vjp(lambda p, v: module.apply(p, v), params, x)
    return (y, *vjp(cotangent))
  return jax.jit(run)


def seconds_per_call(fn: Callable, args: tuple, calls: int) -> float:
  start = time.perf_counter()
  for _ in range(calls):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / calls


def largest_relative_difference(a, b) -> float:
  """Of the outputs and gradients, the largest ||a - b|| / ||a||. Float32 arithmetic gives
  ~1e-6; TF32, a GPU's default for float32 convolutions, ~1e-3."""
  return max(float(jnp.linalg.norm(x - y) / jnp.linalg.norm(x))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def benchmark(case: Case, batch_size: int, device: jax.Device, rounds: int, calls: int) -> dict:
  rng = np.random.default_rng(0)
  x = jax.device_put(rng.standard_normal((batch_size, *case.input_hwc), np.float32), device)
  params = jax.device_put(case.textbook.init(jax.random.PRNGKey(0), x), device)
  cotangent = jax.device_put(rng.standard_normal(
      jax.eval_shape(case.textbook.apply, params, x).shape, np.float32), device)
  forms = {'textbook': forward_and_gradients(case.textbook),
           'rewritten': forward_and_gradients(case.rewritten)}
  results = {name: fn(params, x, cotangent) for name, fn in forms.items()}  # Compiles.
  times = {name: [] for name in forms}
  for _ in range(rounds):  # Alternate, so that drifts in machine speed hit both.
    for name, fn in forms.items():
      times[name].append(seconds_per_call(fn, (params, x, cotangent), calls))
  median_ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
  return {'layer': case.name, 'input': [batch_size, *case.input_hwc],
          'device': runtime.device_description(device), 'textbook_ms': median_ms['textbook'],
          'rewritten_ms': median_ms['rewritten'],
          'speedup': median_ms['textbook'] / median_ms['rewritten'],
          'relative_difference': largest_relative_difference(results['textbook'],
                                                             results['rewritten']),
          'rounds_ms': {name: [1e3 * s for s in t] for name, t in times.items()}}


def markdown(results: list[dict]) -> str:
  lines = ['| layer | input | textbook ms | fakejax ms | speed-up | relative difference |',
           '|---|---|---|---|---|---|']
  for r in results:
    lines.append(f"| {r['layer']} | {'x'.join(map(str, r['input']))} | "
                 f"{r['textbook_ms']:.3f} | {r['rewritten_ms']:.3f} | {r['speedup']:.2f}x | "
                 f"{r['relative_difference']:.1e} |")
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--calls', type=int, default=3, help='Calls per round and form.')
  parser.add_argument('--device', default='', choices=['', 'cpu', 'gpu', 'tpu'],
                      help="JAX's platform (default: JAX's default).")
  parser.add_argument('--match', default='',
                      help="Only the layers whose name this regular expression finds, e.g. "
                      "'depthwise|max-pool' (default: all).")
  parser.add_argument('--json', default='', help='Also write the results here.')
  args = parser.parse_args()
  device = jax.devices(args.device)[0] if args.device else jax.devices()[0]
  cases = [case for case in CASES if re.search(args.match, case.name)]
  if not cases:
    parser.error(f'--match={args.match!r} finds no layer of {[case.name for case in CASES]}')
  results = []
  for case in cases:
    results.append(benchmark(case, args.batch_size, device, args.rounds, args.calls))
    print(markdown(results[-1:]).splitlines()[-1], flush=True)
  print(f'\n{runtime.device_description(device)}, batch {args.batch_size}, '
        'forward and both gradients:\n')
  print(markdown(results))
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + '\n')


if __name__ == '__main__':
  main()
