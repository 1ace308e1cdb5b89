r"""Robustness sweeps of a detectors study: reals and fakes perturbed alike, level by level.

  python tools/robustness_sweep.py runs/detectors_fused \
      --detectors=leave-one-family-out,fusions,D:dcgan_radford,pixelcnn_reals \
      --out=docs/robustness

Each name is a detector of the workdir judged on the families it never saw, or
'leave-one-family-out' (each family by the classifier of all the others) or 'fusions'
(each fusion on its unseen families). Every test real and unseen family's test fake is
perturbed at each level (JPEG quality, blur, resize, noise; `--levels`), scored, and judged
at the detector's review-budget threshold chosen on clean validation reals. Writes
`<out>.md`, `.json` and `.png` (AP and fakes caught against the level) and prints the table.
"""

import argparse
import pathlib
import sys

import numpy as np
from absl import logging

from fakejax import detectors, errors, predict, sharding
from fakejax.data import perturb
from fakejax.evaluation import assemble, restore, robustness
from fakejax.studies import common, dedicated
from fakejax.workdir import Workdir


def subsample(images: np.ndarray, limit: int) -> np.ndarray:
  """At most `limit` images, the same ones on every run."""
  if len(images) <= limit:
    return images
  return images[np.sort(np.random.default_rng(0).choice(len(images), limit, replace=False))]


def sweep(workdir_path: pathlib.Path, names: list[str], levels: list[str],
          max_images: int) -> tuple[list[dict], str]:
  """Every family row of the sweep, and the review-budget threshold's name."""
  workdir = Workdir(workdir_path)
  config = restore.workdir_config(workdir)
  budget = assemble.budget_threshold(config.evaluation)
  mesh = sharding.build_mesh()
  batch_size = config.evaluation.batch_size
  named = dict.fromkeys(d for name in names for d in robustness.named_detectors(config, name))
  restored = {name: detectors.restore_latest(config, workdir, name, mesh, batch_size)
              for name in named}
  thresholds = {name: predict.threshold_of(r.entry.report_json(r.steps[-1]), budget)
                for name, r in restored.items()}
  scorers = {name: (lambda images, r=r: r.scorer.score(images)[-1]) for name, r in restored.items()}
  all_targets = [target for name in names for target in robustness.targets(
      config, name, {n: r.trained_on for n, r in restored.items()})]
  data = common.study_data(config, workdir, mesh, train=None,
                           more_sources=dedicated.autoencoder_sources(config, workdir, mesh, None))
  reals = subsample(np.concatenate([data.reals.test_seen, data.reals.test_anomaly]), max_images)
  families = {f: members for t in all_targets for f, members in t.families.items()}
  fakes = {f: subsample(np.concatenate([data.fakes[g]['test'] for g in members]), max_images)
           for f, members in families.items()}
  return robustness.sweep_rows(scorers, thresholds, all_targets, reals, fakes, levels), budget


def main(argv: list[str]) -> str:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir', type=pathlib.Path)
  parser.add_argument('--detectors', default=robustness.LEAVE_ONE_OUT,
                      help='Comma-separated detector names, leave-one-family-out or fusions.')
  parser.add_argument('--levels', default=','.join(robustness.DEFAULT_LEVELS),
                      help='Comma-separated perturbations (fakejax.data.perturb), e.g. jpeg_50.')
  parser.add_argument('--max_images', type=int, default=2000,
                      help='Test reals, and test fakes per family, at most (a fixed subset).')
  parser.add_argument('--out', type=pathlib.Path, help='Where to write <out>.md, .json, .png '
                      '(default: <workdir>/robustness).')
  args = parser.parse_args(argv)
  logging.set_verbosity(logging.INFO)  # Progress, level by level.
  levels = [level for level in args.levels.split(',') if level]
  for level in levels:
    try:
      perturb.parse(level)
    except ValueError as error:
      raise errors.UserError(f'--levels: {error}') from None
  rows, budget = sweep(args.workdir, [n for n in args.detectors.split(',') if n], levels,
                       args.max_images)
  return robustness.write(robustness.summarise(rows), rows, budget,
                          args.out or args.workdir / 'robustness')


if __name__ == '__main__':
  try:
    print(main(sys.argv[1:]))
  except errors.UserError as error:
    sys.exit(f'robustness_sweep: {error}')
