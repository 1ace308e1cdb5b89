r"""Images/s of the evaluation over all splits, and input-pipeline vs model time.

  python tools/benchmark_eval.py --workdir=runs/dcgan_fmnist

Evaluates the latest checkpoints of a workdir with the full-size evaluation settings
(the whole test split, 10,000 fakes per generator). It times the input pipeline (reading
and splitting the real images) apart from the rest (generating, scoring, metrics), and
prints a Markdown table. Run it twice for figures without compilation.
"""

import argparse
import time

import jax

from fakejax import errors, sharding
from fakejax.data import fashion_mnist, pipeline
from fakejax.evaluation import discriminators, restore
from fakejax.studies import common
from fakejax.workdir import Workdir


def images_processed(config, splits: pipeline.StudySplits) -> int:
  """Images each GAN's evaluation generates or scores (reals once, fakes twice)."""
  num_gans = len(config.gans)
  fakes = config.evaluation.num_fake_samples
  reals = len(splits.test_seen) + len(splits.test_anomaly) + len(splits.validation)
  # Own test and validation fakes: generated, then scored; other GANs' fakes: scored.
  per_gan = reals + 2 * fakes * 2 + (num_gans - 1) * fakes
  return num_gans * per_gan


@errors.exit_on_user_error
def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--num_fake_samples', type=int, default=10_000)
  parser.add_argument('--repeats', type=int, default=2)
  args = parser.parse_args()
  workdir = Workdir(args.workdir)
  config = restore.workdir_config(workdir)
  config.data.test_split = 'test'
  config.data.train_split = 'train'
  config.evaluation.num_fake_samples = args.num_fake_samples
  config.evaluation.batch_size = 1000
  mesh = sharding.build_mesh()
  print('| run | images | input pipeline s | generate + score + metrics s | images/s | '
        'input share |')
  print('|---|---|---|---|---|---|')
  for repeat in range(args.repeats):
    fashion_mnist.load_split.cache_clear()  # Time the reading, not a cached copy.
    start = time.perf_counter()
    splits = pipeline.load_study_splits(config.data, config.seed)
    input_seconds = time.perf_counter() - start
    start = time.perf_counter()
    discriminators.evaluate_discriminators(
        config.gans, workdir, 'latest', reals=splits, settings=common.eval_settings(config),
        seed=config.seed, mesh=mesh)
    model_seconds = time.perf_counter() - start
    images = images_processed(config, splits)
    total = input_seconds + model_seconds
    print(f'| {repeat + 1}{" (compiles)" if repeat == 0 else ""} | {images:,} | '
          f'{input_seconds:.1f} | {model_seconds:.1f} | {images / total:,.0f} | '
          f'{100 * input_seconds / total:.0f}% |')
  print(f'\nbackend: {jax.default_backend()}, {jax.device_count()} devices')


if __name__ == '__main__':
  main()
