"""Restoring what a workdir holds: its config, and stacked checkpoints of its models.

A checkpoint that cannot be restored is named by path and step, with the intact steps
one could use instead.
"""

import dataclasses
import json
from collections.abc import Sequence

import ml_collections
from jax.sharding import Mesh

from fakejax import sharding
from fakejax.data import augment
from fakejax.errors import UserError
from fakejax.evaluation import scoring
from fakejax.models import GanModels, build_gan
from fakejax.train import checkpoints, gan_state, gan_steps, optimizers, replicas
from fakejax.workdir import RunDir, Workdir


# configs/dcgan_fmnist.py's quality group.
QUALITY_DEFAULTS = {'num_samples': 10_000, 'neighbours': 3, 'feature_classifier': {
    'widths': (32, 64), 'feature_dim': 64, 'learning_rate': 1e-3, 'batch_size': 128,
    'num_epochs': 3}}


REVIEW_BUDGET_DEFAULT = 0.02  # configs/dcgan_fmnist.py's evaluation.review_budget.


class WorkdirError(UserError, FileNotFoundError):
  """A folder that is not a workdir written by fakejax.main."""


def workdir_config(workdir: Workdir) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (its config.json)."""
  path = workdir.config_json
  if not path.is_file():
    raise WorkdirError(f'{path} does not exist: is {workdir.root} a workdir of fakejax.main?')
  values = json.loads(path.read_text())
  # Workdirs written before configs named their experiment all hold the DCGAN study.
  values.setdefault('experiment', 'dcgan_detectors')
  # And those written before GANs had a compute dtype trained in float32.
  for gan in values.get('gans', {}).values():
    gan.setdefault('compute_dtype', 'float32')
  # And those of the DCGAN study written before it measured quality get the defaults it
  # has now (evaluation does not use them; the config check asks for them).
  if values['experiment'] == 'dcgan_detectors':
    values.setdefault('quality', QUALITY_DEFAULTS)
  # And those written before the review-budget threshold get the default budget (2%).
  values.get('evaluation', {}).setdefault('review_budget', REVIEW_BUDGET_DEFAULT)
  # And those written before further budgets were compared had none.
  values.get('evaluation', {}).setdefault('more_review_budgets', ())
  # And those written before generators of other families had none.
  values.setdefault('generators', {})
  # And those written before seeds were an axis trained one seed.
  values.setdefault('seeds', ())
  # And those written before autoencoders had a choice of upsampler transposed-convolved.
  for group in ('autoencoders', 'autoencoder_generators'):
    for autoencoder in values.get(group, {}).values():
      autoencoder.setdefault('upsampler', 'transposed')
  # And classifiers written before resampling was an augmentation had none.
  augmentation = values.get('classifier', {}).get('augmentation')
  if augmentation is not None:
    augmentation.setdefault('resample_prob', 0.0)
    augmentation.setdefault('resample_scale_min', 0.5)
  # And detectors studies written before leave-one-family-out held no families.
  if values['experiment'] == 'detectors':
    values.setdefault('families', {})
    # And those written before classifiers had a choice of input saw the image.
    values['classifier'].setdefault('input', 'image')
    # And those written before real-only detectors had none.
    values.setdefault('real_only', {})
    for model in values['real_only'].values():  # And with no augmentation at first.
      model.setdefault('augmentation', dataclasses.asdict(augment.Augmentation()))
    # And those written before fusions had none.
    values.setdefault('fusions', {})
  return ml_collections.ConfigDict(values)


def select_steps(available: list[int], which: str) -> list[int]:
  """'latest', 'all', or comma-separated steps -> the steps to evaluate."""
  if not available:
    return []
  if which == 'latest':
    return available[-1:]
  if which == 'all':
    return available
  try:
    wanted = [int(step) for step in which.split(',')]
  except ValueError:
    raise UserError(f"Steps {which!r} are not 'latest', 'all' or comma-separated "
                    'numbers.') from None
  missing = sorted(set(wanted) - set(available))
  if missing:
    raise checkpoints.CheckpointNotFoundError(f'No checkpoint of steps {missing}; available: {available}.')
  return wanted


stack = replicas.stack  # Checkpoints stack on a leading axis as replicas do.


@dataclasses.dataclass
class StackedGan:
  """Checkpoints of one GAN, with their variables stacked on a leading axis."""
  name: str
  models: GanModels
  latent_dim: int
  steps: list[int]
  g_variables: dict  # Leaves [K, ...].
  d_variables: dict


def restore_gan(gan_config: ml_collections.ConfigDict, run: RunDir, name: str,
                steps: Sequence[int], mesh: Mesh, replica: int | None = None,
                seeds: Sequence[int] = ()) -> StackedGan:
  """Restores the given checkpoint steps of GAN `name` and stacks their variables; of a
  checkpoint of several seeds' replicas, replica number `replica`, or with `seeds` every
  replica, replica-major (its `steps` repeat per replica)."""
  models = build_gan(gan_config.architecture, gan_config.compute_dtype)
  tx = optimizers.from_config(gan_config.optimizer)
  like = sharding.abstract_replicated(
      lambda key: gan_state.init_state(models, tx, gan_config.latent_dim, key), mesh)
  if seeds:
    states = checkpoints.restore_every_replica(run, steps, like, seeds, name)
  else:
    states = checkpoints.restore_replica_states(run, steps, like, replica, name)
  return StackedGan(
      name=name, models=models, latent_dim=gan_config.latent_dim,
      steps=list(steps) * (len(states) // len(steps)),
      g_variables=stack([gan_state.generator_variables(s) for s in states]),
      d_variables=stack([gan_state.discriminator_variables(s) for s in states]))


def gan_scorer(gan: StackedGan, mesh: Mesh, batch_size: int) -> scoring.Scorer:
  """Scores images with the discriminators of every stacked checkpoint of `gan`."""
  return scoring.Scorer(gan_steps.make_score(gan.models), gan.d_variables, mesh, batch_size)


def gan_sampler(gan: StackedGan, mesh: Mesh, batch_size: int) -> scoring.Sampler:
  """Samples the generators of every stacked checkpoint of `gan`."""
  return scoring.Sampler(gan_steps.make_generate(gan.models), gan.g_variables, gan.latent_dim,
                         mesh, batch_size)
