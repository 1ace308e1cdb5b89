r"""Train-step and scoring speed of fakejax, beside PyTorch on the same machine.

  python tools/benchmark.py                      # both DCGANs, batch 256, CPU
  python tools/benchmark.py --models=dcgan_tf --batch_size=64 --rounds=7 --json=bench.json
  python tools/benchmark.py --device=gpu          # JAX and PyTorch on the first GPU

For each model: images/s of the full train step (one D and one G update, Adam) and of
scoring (D inference, batch 1000), compile time, XLA's memory estimate of the step, GFLOP
per image (XLA's cost analysis) and the fraction of the FMA peak reached. When PyTorch is
installed (`pip install -e '.[bench]'`), the same architectures and the same simultaneous
update run in eager PyTorch, alternating with fakejax round by round (A B A B ...);
medians are reported with the fakejax/PyTorch ratio. The input share is the fraction of
a training loop's time lost to the input pipeline: the same steps fed by the grain
pipeline (one fresh batch per step, as in training) versus a batch already on the device.
Output: a Markdown table, and JSON.
"""

import argparse
import json
import statistics
import sys
import time
import pathlib

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from configs import dcgan_fmnist  # noqa: E402
from fakejax import sharding  # noqa: E402
from fakejax.data import pipeline  # noqa: E402
from fakejax.models import build_gan  # noqa: E402
from fakejax.train import gan_state, gan_steps  # noqa: E402

# 2 cores x AVX-512 (2 FMA units x 16 float32 lanes x 2 flops) x ~1.8 GHz, measured as
# ~231 GFLOP/s on this project's CPU machines. Pass --peak_gflops for others.
DEFAULT_PEAK_GFLOPS = 231.0
SCORE_BATCH = 1000


class JaxRunner:
  """fakejax's jitted train step and scoring for one architecture, on one device."""

  def __init__(self, architecture: str, batch_size: int, device: jax.Device):
    config = getattr(dcgan_fmnist, architecture)()
    self.models = build_gan(architecture)
    self.mesh = sharding.build_mesh([device])
    tx = gan_state.build_optimizer(config.optimizer)
    self.state = jax.jit(lambda k: gan_state.init_state(self.models, tx, config.latent_dim, k),
                         out_shardings=sharding.replicated(self.mesh))(jax.random.PRNGKey(0))
    train_images = np.random.default_rng(0).integers(0, 255, (60_000, 28, 28, 1), np.uint8)
    self.batches = pipeline.train_batches(train_images, seed=0, num_epochs=1000,
                                          batch_size=batch_size, process_index=0,
                                          process_count=1)
    self.batch = sharding.global_batch(self.mesh, next(self.batches))
    step = jax.jit(gan_steps.make_train_step(self.models, tx, config.latent_dim),
                   in_shardings=(sharding.replicated(self.mesh), sharding.batch_sharded(self.mesh)),
                   out_shardings=sharding.replicated(self.mesh), donate_argnums=0)
    start = time.perf_counter()
    self.compiled = step.lower(self.state, self.batch).compile()
    self.compile_seconds = time.perf_counter() - start
    self.step = step
    score = jax.jit(gan_steps.make_score(self.models))
    self.score_images = jax.device_put(np.random.default_rng(1).integers(
        0, 255, (SCORE_BATCH, 28, 28, 1), dtype=np.uint8), device)
    self.score = lambda: score(gan_state.discriminator_variables(self.state), self.score_images)
    self.score().block_until_ready()
    self.train(1)
    self.train_from_pipeline(1)

  def flops_per_image(self) -> float:
    analysis = self.compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis['flops']) / self.batch.shape[0]

  def memory_bytes(self) -> int:
    memory = self.compiled.memory_analysis()
    return int(memory.temp_size_in_bytes + memory.argument_size_in_bytes +
               memory.output_size_in_bytes)

  def train(self, steps: int) -> None:
    for _ in range(steps):
      self.state, metrics = self.step(self.state, self.batch)
    jax.block_until_ready(metrics)

  def train_from_pipeline(self, steps: int) -> None:
    """As in training: each step's batch comes from the grain pipeline."""
    for _ in range(steps):
      batch = sharding.global_batch(self.mesh, next(self.batches))
      self.state, metrics = self.step(self.state, batch)
    jax.block_until_ready(metrics)

  def run_score(self, calls: int) -> None:
    for _ in range(calls):
      out = self.score()
    out.block_until_ready()


def torch_models(architecture: str):
  """The same two DCGANs in PyTorch (NCHW), with their Adam settings (lr, betas)."""
  from torch import nn  # pylint: disable=g-import-not-at-top

  class Reshape(nn.Module):
    def forward(self, x):
      return x.view(-1, 256, 7, 7)

  if architecture == 'dcgan_tf':
    generator = nn.Sequential(
        nn.Linear(100, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256, eps=1e-3),
        nn.LeakyReLU(0.3), Reshape(),
        nn.ConvTranspose2d(256, 128, 5, 1, padding=2, bias=False), nn.BatchNorm2d(128, eps=1e-3),
        nn.LeakyReLU(0.3),
        nn.ConvTranspose2d(128, 64, 5, 2, padding=2, output_padding=1, bias=False),
        nn.BatchNorm2d(64, eps=1e-3), nn.LeakyReLU(0.3),
        nn.ConvTranspose2d(64, 1, 5, 2, padding=2, output_padding=1, bias=False), nn.Tanh())
    discriminator = nn.Sequential(
        nn.Conv2d(1, 64, 5, 2, padding=2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
        nn.Conv2d(64, 128, 5, 2, padding=2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
        nn.Flatten(), nn.Linear(7 * 7 * 128, 1))
    lr, betas = 1e-4, (0.9, 0.999)
  else:
    generator = nn.Sequential(
        nn.Linear(100, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256), nn.ReLU(),
        Reshape(), nn.ConvTranspose2d(256, 128, 4, 2, padding=1, bias=False),
        nn.BatchNorm2d(128), nn.ReLU(), nn.ConvTranspose2d(128, 1, 4, 2, padding=1), nn.Tanh())
    discriminator = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, padding=1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 7), nn.Flatten())
    lr, betas = 2e-4, (0.5, 0.999)
  return generator, discriminator, lr, betas


class TorchRunner:
  """The same simultaneous D and G update in eager PyTorch."""

  def __init__(self, architecture: str, batch_size: int, threads: int, device: str):
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(threads)
    self.torch = torch
    self.device = torch.device('cuda' if device == 'gpu' else 'cpu')
    g, d, lr, betas = torch_models(architecture)
    self.g, self.d = g.to(self.device), d.to(self.device)
    self.g_opt = torch.optim.Adam(self.g.parameters(), lr, betas)
    self.d_opt = torch.optim.Adam(self.d.parameters(), lr, betas)
    self.real = torch.rand(batch_size, 1, 28, 28, device=self.device) * 2 - 1
    self.batch_size = batch_size
    self.bce = torch.nn.BCEWithLogitsLoss()
    self.score_images = torch.rand(SCORE_BATCH, 1, 28, 28, device=self.device) * 2 - 1
    self.train(1)

  def synchronize(self) -> None:
    if self.device.type == 'cuda':
      self.torch.cuda.synchronize()

  def train(self, steps: int) -> None:
    torch = self.torch
    for _ in range(steps):
      fake = self.g(torch.randn(self.batch_size, 100, device=self.device))
      real_logits, fake_logits = self.d(self.real), self.d(fake)
      d_loss = (self.bce(real_logits, torch.ones_like(real_logits)) +
                self.bce(fake_logits, torch.zeros_like(fake_logits)))
      g_loss = self.bce(fake_logits, torch.ones_like(fake_logits))
      d_grads = torch.autograd.grad(d_loss, list(self.d.parameters()), retain_graph=True)
      g_grads = torch.autograd.grad(g_loss, list(self.g.parameters()))
      for params, grads, opt in ((self.d.parameters(), d_grads, self.d_opt),
                                 (self.g.parameters(), g_grads, self.g_opt)):
        for p, g in zip(params, grads):
          p.grad = g
        opt.step()
    self.synchronize()

  def run_score(self, calls: int) -> None:
    self.d.eval()
    with self.torch.no_grad():
      for _ in range(calls):
        self.torch.sigmoid(self.d(self.score_images))
    self.synchronize()
    self.d.train()


def timed(fn, *args) -> float:
  start = time.perf_counter()
  fn(*args)
  return time.perf_counter() - start


def benchmark(architecture: str, args) -> dict:
  device = jax.devices(args.device)[0] if args.device else jax.devices()[0]
  jax_runner = JaxRunner(architecture, args.batch_size, device)
  torch_runner = None
  if not args.no_torch:
    try:
      torch_runner = TorchRunner(architecture, args.batch_size, args.threads, device.platform)
    except ImportError:
      print('PyTorch is not installed: fakejax alone (pip install -e ".[bench]").',
            file=sys.stderr)
  rates = {'jax_train': [], 'torch_train': [], 'jax_score': [], 'torch_score': [],
           'jax_train_from_pipeline': []}
  for _ in range(args.rounds):  # Alternate, so that drifts in machine speed hit both.
    rates['jax_train'].append(args.steps * args.batch_size / timed(jax_runner.train, args.steps))
    rates['jax_train_from_pipeline'].append(
        args.steps * args.batch_size / timed(jax_runner.train_from_pipeline, args.steps))
    if torch_runner:
      rates['torch_train'].append(
          args.steps * args.batch_size / timed(torch_runner.train, args.steps))
    rates['jax_score'].append(args.score_calls * SCORE_BATCH /
                              timed(jax_runner.run_score, args.score_calls))
    if torch_runner:
      rates['torch_score'].append(args.score_calls * SCORE_BATCH /
                                  timed(torch_runner.run_score, args.score_calls))
  median = {k: statistics.median(v) if v else None for k, v in rates.items()}
  flops = jax_runner.flops_per_image()
  return {
      'model': architecture, 'batch_size': args.batch_size, 'device': device.device_kind,
      'train_img_per_s': median['jax_train'],
      'input_share': max(0.0, 1 - median['jax_train_from_pipeline'] / median['jax_train']),
      'torch_train_img_per_s': median['torch_train'],
      'score_img_per_s': median['jax_score'], 'torch_score_img_per_s': median['torch_score'],
      'compile_s': jax_runner.compile_seconds, 'step_memory_mb': jax_runner.memory_bytes() / 2**20,
      'gflop_per_image': flops / 1e9,
      'fma_peak_fraction': median['jax_train'] * flops / 1e9 / args.peak_gflops,
      'rounds': rates,
  }


def markdown(results: list[dict]) -> str:
  ratio = lambda a, b: f'{a / b:.2f}x' if a and b else '—'
  number = lambda v: f'{v:,.0f}' if v else '—'
  lines = ['| model | batch | train img/s | PyTorch eager | ratio | score img/s | PyTorch eager | '
           'ratio | input share | compile s | step memory MB | GFLOP/img | FMA peak |',
           '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
  for r in results:
    lines.append(
        f"| {r['model']} | {r['batch_size']} | {number(r['train_img_per_s'])} | "
        f"{number(r['torch_train_img_per_s'])} | "
        f"{ratio(r['train_img_per_s'], r['torch_train_img_per_s'])} | "
        f"{number(r['score_img_per_s'])} | {number(r['torch_score_img_per_s'])} | "
        f"{ratio(r['score_img_per_s'], r['torch_score_img_per_s'])} | "
        f"{100 * r['input_share']:.0f}% | {r['compile_s']:.1f} | "
        f"{r['step_memory_mb']:.0f} | {r['gflop_per_image']:.2f} | "
        f"{100 * r['fma_peak_fraction']:.0f}% |")
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default='dcgan_tf,dcgan_radford')
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--steps', type=int, default=3, help='Train steps per round.')
  parser.add_argument('--score_calls', type=int, default=3, help='Scoring batches per round.')
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--threads', type=int, default=2, help="PyTorch's intra-op threads.")
  parser.add_argument('--peak_gflops', type=float, default=DEFAULT_PEAK_GFLOPS,
                      help="The device's float32 FMA peak (the default is this CPU's).")
  parser.add_argument('--device', default='', choices=['', 'cpu', 'gpu', 'tpu'],
                      help="JAX's platform (default: JAX's default); PyTorch follows on GPU.")
  parser.add_argument('--no_torch', action='store_true')
  parser.add_argument('--json', default='', help='Also write the results here.')
  args = parser.parse_args()
  results = [benchmark(name, args) for name in args.models.split(',')]
  print(markdown(results))
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + '\n')


if __name__ == '__main__':
  main()
