"""Evaluating the discriminators of a workdir's GANs as fake detectors.

Each GAN's own fakes come from its own generator at every evaluated checkpoint;
cross-GAN fakes from each other GAN's latest checkpoint, and from any other generators
the caller passes (test fakes by name).
"""

from collections.abc import Mapping

import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from fakejax.data import fake_pool, pipeline
from fakejax.evaluation import assemble, restore
from fakejax.train import checkpoints
from fakejax.workdir import Workdir


def restore_gans(gans: ml_collections.ConfigDict, gan_dir: Workdir, which_steps: str,
                 mesh: Mesh, replica: int | None = None) -> dict[str, restore.StackedGan]:
  """The chosen steps of every GAN, plus its latest (whose fakes serve the others); of
  several seeds' replicas, replica number `replica`."""
  out = {}
  for name, gan_config in gans.items():
    run = gan_dir.gan(name)
    available = run.steps()
    if not available:
      raise checkpoints.CheckpointNotFoundError(
          f"No checkpoint of GAN '{name}' in {run.checkpoints}: train it first "
          f'(python -m fakejax.main --workdir={gan_dir.root} ...).')
    steps = restore.select_steps(available, which_steps)
    if available[-1] not in steps:
      steps.append(available[-1])
    out[name] = restore.restore_gan(gan_config, run, name, steps, mesh, replica)
  return out


def evaluate_discriminators(gans: ml_collections.ConfigDict, gan_dir: Workdir, which_steps: str,
                            *, reals: pipeline.StudySplits, settings: assemble.EvalSettings,
                            seed: int, mesh: Mesh,
                            other_fakes: Mapping[str, np.ndarray] | None = None,
                            replica: int | None = None) -> dict[str, list[dict]]:
  """The reports of the chosen checkpoint steps of every GAN, by GAN name; of several seeds'
  replicas, those of replica number `replica`, whose others are the same replica's GANs."""
  batch_size, num_fakes = settings.evaluation.batch_size, settings.evaluation.num_fake_samples
  stacked = restore_gans(gans, gan_dir, which_steps, mesh, replica)
  samplers = {name: restore.gan_sampler(gan, mesh, batch_size) for name, gan in stacked.items()}
  own_fakes = {name: sampler.generate(num_fakes, seed + fake_pool.TEST_FAKES_SEED_OFFSET)
               for name, sampler in samplers.items()}
  shared = {f'gan:{name}': fakes[-1] for name, fakes in own_fakes.items()}
  shared.update({f'gan:{name}': fakes for name, fakes in (other_fakes or {}).items()})
  shared.update(assemble.folder_fakes(settings.evals))
  reports = {}
  for name, gan in stacked.items():
    others = {key: images for key, images in shared.items() if key != f'gan:{name}'}
    own_validation = samplers[name].generate(num_fakes,
                                             seed + fake_pool.VALIDATION_FAKES_SEED_OFFSET)
    sets = assemble.score_sets(restore.gan_scorer(gan, mesh, batch_size), reals,
                               own_fakes[name], own_validation, others)
    wanted = set(restore.select_steps(gan.steps, which_steps))
    detector = assemble.gan_detector(gans[name], name, gan.steps)
    reports[name] = [r for r in assemble.evaluate_detector(settings, detector, sets)
                     if r['step'] in wanted]
    logging.info('Evaluated %s at steps %s.', name, [r['step'] for r in reports[name]])
  return reports
