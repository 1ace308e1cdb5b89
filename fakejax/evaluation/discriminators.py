"""Evaluating the discriminators of a workdir's GANs as fake detectors.

Each GAN's own fakes come from its own generator at every evaluated checkpoint;
cross-GAN fakes from each other GAN's latest checkpoint, and from any other generators
the caller passes (test fakes by name).
"""

from collections.abc import Mapping, Sequence

import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from fakejax.data import fake_pool, pipeline
from fakejax.evaluation import assemble, restore
from fakejax.train import checkpoints
from fakejax.workdir import Workdir


def restore_gans(gans: ml_collections.ConfigDict, gan_dir: Workdir, which_steps: str,
                 mesh: Mesh, seeds: Sequence[int] = ()) -> dict[str, restore.StackedGan]:
  """The chosen steps of every GAN, plus its latest (whose fakes serve the others); of a run
  of several seeds (`seeds`), every replica's, replica-major."""
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
    out[name] = restore.restore_gan(gan_config, run, name, steps, mesh, seeds=seeds)
  return out


def latest_fakes(fakes: np.ndarray, num_replicas: int) -> np.ndarray:
  """A GAN's fakes of every checkpoint [K * S, N, ...], replica-major -> those of each
  replica's latest [K, N, ...]; of one replica, [N, ...]."""
  per_replica = fakes.reshape(num_replicas, -1, *fakes.shape[1:])[:, -1]
  return per_replica[0] if num_replicas == 1 else per_replica


def per_checkpoint(images: np.ndarray, num_replicas: int, steps_per_replica: int) -> np.ndarray:
  """Test fakes for the checkpoints of `num_replicas` replicas' `steps_per_replica` steps:
  of one replica, its [N, ...] images, which every checkpoint scores; of several, each
  replica's [K, N, ...] repeated for each of its checkpoints, [K * S, N, ...]."""
  if num_replicas == 1:
    return images
  return np.repeat(images, steps_per_replica, axis=0)


def evaluate_discriminators(gans: ml_collections.ConfigDict, gan_dir: Workdir, which_steps: str,
                            *, reals: pipeline.StudySplits, settings: assemble.EvalSettings,
                            seed: int, mesh: Mesh,
                            other_fakes: Mapping[str, np.ndarray] | None = None,
                            seeds: Sequence[int] = ()) -> dict[str, list[dict]]:
  """The reports of the chosen checkpoint steps of every GAN, by GAN name.

  Of a run of several seeds (`seeds`), every replica's reports, replica-major, all scored in
  one call per GAN; replica k meets what its single-seed run would: the other GANs' replica
  k, and `other_fakes[name][k]` (of one seed, `other_fakes[name]` is [N, ...]).
  """
  batch_size, num_fakes = settings.evaluation.batch_size, settings.evaluation.num_fake_samples
  num_replicas = max(len(seeds), 1)
  stacked = restore_gans(gans, gan_dir, which_steps, mesh, seeds)
  samplers = {name: restore.gan_sampler(gan, mesh, batch_size) for name, gan in stacked.items()}
  own_fakes = {name: sampler.generate(num_fakes, seed + fake_pool.TEST_FAKES_SEED_OFFSET)
               for name, sampler in samplers.items()}
  latest = {f'gan:{name}': latest_fakes(fakes, num_replicas) for name, fakes in own_fakes.items()}
  latest.update({f'gan:{name}': fakes for name, fakes in (other_fakes or {}).items()})
  folder_fakes = assemble.folder_fakes(settings.evals)
  more_reals = assemble.perturbed_reals(settings.evals, reals)
  reports = {}
  for name, gan in stacked.items():
    steps_per_replica = len(gan.steps) // num_replicas
    others = {key: per_checkpoint(images, num_replicas, steps_per_replica)
              for key, images in latest.items() if key != f'gan:{name}'}
    others.update(folder_fakes)
    own_validation = samplers[name].generate(num_fakes,
                                             seed + fake_pool.VALIDATION_FAKES_SEED_OFFSET)
    sets = assemble.score_sets(restore.gan_scorer(gan, mesh, batch_size), reals,
                               own_fakes[name], own_validation, others, more_reals)
    wanted = set(restore.select_steps(gan.steps[:steps_per_replica], which_steps))
    detector = assemble.gan_detector(gans[name], name, gan.steps)
    reports[name] = [r for r in assemble.evaluate_detector(settings, detector, sets)
                     if r['step'] in wanted]
    logging.info('Evaluated %s at steps %s.', name, [r['step'] for r in reports[name]])
  return reports
