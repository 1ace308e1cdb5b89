"""Evaluate GAN discriminators as fake detectors, from the Orbax checkpoints of a workdir.

Every image set (test reals of seen and anomaly classes, validation reals, each generator's
fakes) is scored once per checkpoint; the splits of `config.evals` are then assembled from
those score sets. Several checkpoints of one GAN are stacked and scored together in one
compiled call (`lax.map`, vmapped in chunks; see `checkpoints_per_vmap`). Operating points are chosen on the validation split, never on test.
"""

import dataclasses
import json
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fakejax import sharding
from fakejax.config import study_generators
from fakejax.data import folders, pipeline
from fakejax.evaluation import metrics
from fakejax.models import GanModels, build_gan
from fakejax.train import checkpoints, gan_state, gan_steps, gan_trainer

# Seeds of the latent vectors of evaluation fakes, apart from any used in training.
TEST_FAKES_SEED_OFFSET = 1_000_001
VALIDATION_FAKES_SEED_OFFSET = 2_000_003


class CheckpointNotFoundError(FileNotFoundError):
  """A GAN of the config has no checkpoint (at the asked step) in the workdir."""


@dataclasses.dataclass
class StackedGan:
  """Checkpoints of one GAN, with their variables stacked on a leading axis."""
  name: str
  models: GanModels
  latent_dim: int
  steps: list[int]
  g_variables: dict  # Leaves [K, ...].
  d_variables: dict


def workdir_config(workdir: pathlib.Path) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (its config.json)."""
  path = pathlib.Path(workdir) / 'config.json'
  if not path.is_file():
    raise FileNotFoundError(f'{path} does not exist: is {workdir} a workdir of fakejax.main?')
  values = json.loads(path.read_text())
  # Workdirs written before configs named their experiment all hold the DCGAN study.
  values.setdefault('experiment', 'dcgan_detectors')
  # And those written before GANs had a compute dtype trained in float32.
  for gan in values.get('gans', {}).values():
    gan.setdefault('compute_dtype', 'float32')
  return ml_collections.ConfigDict(values)


def checkpoint_steps(workdir: pathlib.Path, name: str) -> list[int]:
  directory = workdir / name / 'checkpoints'
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def restore_gan(config: ml_collections.ConfigDict, workdir: pathlib.Path, name: str,
                steps: Sequence[int], mesh: Mesh) -> StackedGan:
  """Restores the given checkpoint steps of GAN `name` and stacks their variables."""
  gan_config = config.gans[name]
  models = build_gan(gan_config.architecture, gan_config.compute_dtype)
  tx = gan_state.build_optimizer(gan_config.optimizer)
  like = gan_trainer.init_sharded_state(models, tx, gan_config.latent_dim, config.seed, mesh)
  with checkpoints.checkpoint_manager(workdir / name / 'checkpoints', max_to_keep=None,
                                      save_interval_steps=1) as manager:
    states = [checkpoints.restore(manager, step, like)[0] for step in steps]
  stack = lambda *leaves: jnp.stack(leaves)
  return StackedGan(
      name=name, models=models, latent_dim=gan_config.latent_dim, steps=list(steps),
      g_variables=jax.tree.map(stack, *map(gan_state.generator_variables, states)),
      d_variables=jax.tree.map(stack, *map(gan_state.discriminator_variables, states)))


def checkpoints_per_vmap(num_checkpoints: int) -> int:
  """How many stacked checkpoints one vmapped call scores.

  vmap over weights turns each convolution into a grouped one: fast on GPU/TPU, but 4-5x
  slower than one checkpoint at a time on XLA's CPU backend (measured). `lax.map` with
  this batch size gives one compiled call either way.
  """
  return 1 if jax.default_backend() == 'cpu' else num_checkpoints


def _global(mesh: Mesh, array: np.ndarray, batch_axis: int) -> jax.Array:
  """This process's share of `array` along `batch_axis`, assembled into a global array."""
  per_process = array.shape[batch_axis] // jax.process_count()
  local = np.take(array, np.arange(per_process) + jax.process_index() * per_process,
                  axis=batch_axis)
  spec = PartitionSpec(*([None] * batch_axis), sharding.DATA_AXIS)
  return jax.make_array_from_process_local_data(NamedSharding(mesh, spec), local)


def _batches(num: int, batch_size: int):
  for start in range(0, num, batch_size):
    yield start, min(start + batch_size, num)


def _pad(array: np.ndarray, axis: int, size: int) -> np.ndarray:
  widths = [(0, 0)] * array.ndim
  widths[axis] = (0, size - array.shape[axis])
  return np.pad(array, widths)


def _over_checkpoints(fn, num_checkpoints: int):
  """fn(variables, *x) -> fn over stacked variables [K] (and x [K] where stacked)."""
  chunk = checkpoints_per_vmap(num_checkpoints)
  return lambda variables, *x: jax.lax.map(lambda args: fn(*args), (variables, *x),
                                           batch_size=chunk)


# Images each CPU device scores at once inside a jitted call. The activations of a few
# hundred small images stay in the CPU's caches; those of a whole 1000-image call did not,
# and scoring ran 1.2x slower (tools/benchmark.py). A GPU wants the whole batch at once.
SCORING_CHUNK = 125


def in_chunks(score_fn, num_shards: int, chunk_size: int = SCORING_CHUNK):
  """`score_fn(variables, images) -> [N, ...]`, run on CPUs over each shard's images in
  chunks, elsewhere on the whole batch.

  The scores are the same (images are scored independently); the images stay on their
  devices: [N] -> [shards, chunks, chunk] -> one [shards * chunk] batch per step of a
  `lax.map` over chunks. Batches that do not split evenly are scored whole.
  """
  def on_platform(variables, images: jax.Array) -> jax.Array:
    return jax.lax.platform_dependent(variables, images, cpu=chunked, default=score_fn)

  def chunked(variables, images: jax.Array) -> jax.Array:
    per_shard = images.shape[0] // num_shards
    if per_shard <= chunk_size or images.shape[0] % num_shards or per_shard % chunk_size:
      return score_fn(variables, images)
    num_chunks = per_shard // chunk_size
    grouped = images.reshape(num_shards, num_chunks, chunk_size, *images.shape[1:])
    by_chunk = jnp.swapaxes(grouped, 0, 1).reshape(num_chunks, num_shards * chunk_size,
                                                   *images.shape[1:])
    out = jax.lax.map(lambda batch: score_fn(variables, batch), by_chunk)
    out = out.reshape(num_chunks, num_shards, chunk_size, *out.shape[2:])
    return jnp.swapaxes(out, 0, 1).reshape(images.shape[0], *out.shape[3:])
  return on_platform


class Scorer:
  """Jitted, batched, sharded scoring under the stacked checkpoints of a detector.

  `score_fn(variables, images_uint8) -> P(real)` scores one checkpoint; `variables` holds
  every checkpoint's, stacked on a leading axis [K]. They may be replaced between calls by
  others of the same shapes: the compiled functions take them as arguments.
  """

  def __init__(self, score_fn, variables: dict, mesh: Mesh, batch_size: int):
    self.variables, self.mesh, self.batch_size = variables, mesh, batch_size
    self.num_checkpoints = len(jax.tree.leaves(variables)[0])
    score_fn = in_chunks(score_fn, mesh.size)
    replicated = sharding.replicated(mesh)
    over = lambda fn: _over_checkpoints(fn, self.num_checkpoints)
    # [K] checkpoints x [B] shared images, or x [K, B] images of their own.
    self._score_shared = jax.jit(lambda v, images: over(lambda vk: score_fn(vk, images))(v),
                                 out_shardings=replicated)
    self._score_own = jax.jit(over(score_fn), out_shardings=replicated)

  def score(self, images: np.ndarray) -> np.ndarray:
    """P(real) [K, N] of shared uint8 images [N, H, W, C] under every checkpoint."""
    out = [np.asarray(self._score_shared(
        self.variables, _global(self.mesh, _pad(images[a:b], 0, self.batch_size), 0)))[:, :b - a]
           for a, b in _batches(len(images), self.batch_size)]
    return np.concatenate(out, axis=1) if out else np.zeros((self.num_checkpoints, 0), np.float32)

  def score_own(self, images: np.ndarray) -> np.ndarray:
    """P(real) [K, N] of images [K, N, H, W, C], each checkpoint scoring its own row."""
    out = [np.asarray(self._score_own(
        self.variables, _global(self.mesh, _pad(images[:, a:b], 1, self.batch_size), 1)))[:, :b - a]
           for a, b in _batches(images.shape[1], self.batch_size)]
    return np.concatenate(out, axis=1)


def gan_scorer(gan: StackedGan, mesh: Mesh, batch_size: int) -> Scorer:
  """Scores images with the discriminators of every stacked checkpoint of `gan`."""
  return Scorer(gan_steps.make_score(gan.models), gan.d_variables, mesh, batch_size)


class Sampler:
  """Jitted, batched, sharded generation for the stacked checkpoints of a GAN."""

  def __init__(self, gan: StackedGan, mesh: Mesh, batch_size: int):
    self.gan, self.mesh, self.batch_size = gan, mesh, batch_size
    generate = gan_steps.make_generate(gan.models)
    self._generate = jax.jit(lambda v, latents: _over_checkpoints(
        lambda vk: gan_steps.to_uint8(generate(vk, latents)), len(gan.steps))(v),
                             out_shardings=sharding.replicated(mesh))

  def generate(self, num_images: int, seed: int) -> np.ndarray:
    """uint8 samples [K, N, H, W, C] of every checkpoint's generator, from the same latents."""
    key = jax.random.PRNGKey(seed)
    out = []
    for index, (a, b) in enumerate(_batches(num_images, self.batch_size)):
      latents = np.asarray(jax.random.normal(jax.random.fold_in(key, index),
                                             (self.batch_size, self.gan.latent_dim)))
      out.append(np.asarray(self._generate(self.gan.g_variables,
                                           _global(self.mesh, latents, 0)))[:, :b - a])
    return np.concatenate(out, axis=1)


def split_metrics(fake_prob: jax.Array, labels: jax.Array, thresholds: jax.Array,
                  num_bins: int) -> dict:
  """Metrics of one split at each threshold [T] (vmapped over checkpoints by the caller)."""
  confusions = jax.vmap(metrics.confusion_matrix, in_axes=(None, None, 0))(
      fake_prob, labels, thresholds)
  return {
      'confusion_matrix': confusions,
      'report': jax.vmap(metrics.classification_report)(confusions),
      'histogram_real': metrics.histogram(fake_prob, num_bins, where=labels == 0),
      'histogram_generated': metrics.histogram(fake_prob, num_bins, where=labels == 1),
  }


def choose_thresholds(fake_prob: jax.Array, labels: jax.Array, fake_recall_target: float) -> jax.Array:
  """[0.5, Youden's J, lowest fake recall >= target], chosen on validation scores."""
  points = metrics.roc_points(fake_prob, labels)
  return jnp.stack([jnp.float32(0.5), metrics.youden_threshold(points),
                    metrics.threshold_for_fake_recall(points, fake_recall_target)])


def threshold_names(config: ml_collections.ConfigDict) -> list[str]:
  return ['default_0.5', 'youden', f'fake_recall_{config.evaluation.fake_recall_target:g}']


_split_metrics = jax.jit(jax.vmap(split_metrics, in_axes=(0, None, 0, None)), static_argnums=3)
_threshold_free = jax.jit(jax.vmap(metrics.threshold_free_metrics, in_axes=(0, None)))
_choose_thresholds = jax.jit(jax.vmap(choose_thresholds, in_axes=(0, None, None)),
                             static_argnums=2)


def _labelled(reals: np.ndarray, fakes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """P(real) of reals and fakes [K, *] -> (fake probability [K, N], labels [N])."""
  fake_prob = 1.0 - np.concatenate([reals, fakes], axis=1)
  labels = np.concatenate([np.zeros(reals.shape[1], np.int32), np.ones(fakes.shape[1], np.int32)])
  return fake_prob, labels


@dataclasses.dataclass
class ScoreSets:
  """P(real) [K, N] of every image set a GAN's evaluation needs, and the images."""
  p_real: dict[str, np.ndarray]
  images: dict[str, np.ndarray]  # Reals [N, ...]; own fakes [K, N, ...].


def real_source(name: str, sets: ScoreSets) -> tuple[np.ndarray, np.ndarray]:
  """(P(real) [K, N], images [N, ...]) of a `reals` source of config.evals."""
  parts = {'seen': ['seen'], 'anomaly': ['anomaly'], 'all': ['seen', 'anomaly'], '': []}[name]
  k = next(iter(sets.p_real.values())).shape[0]
  if not parts:
    return np.zeros((k, 0), np.float32), np.zeros((0, *sets.images['seen'].shape[1:]), np.uint8)
  return (np.concatenate([sets.p_real[p] for p in parts], axis=1),
          np.concatenate([sets.images[p] for p in parts]))


def fake_source(name: str, sets: ScoreSets, trained_on: Sequence[str],
                generators: Sequence[str]) -> tuple[np.ndarray, list[str]]:
  """(P(real) [K, N], the fake sets it pools) of a `fakes` source of config.evals.

  'own' is the fakes of the generators the detector was trained against (`trained_on`);
  'others' pools every other generator's.
  """
  if name == 'own':
    keys = ['own']
  elif name == 'others':
    keys = [f'gan:{other}' for other in generators if other not in trained_on]
  elif name.startswith('folder:'):
    keys = [name]
  elif name:
    keys = [f'gan:{name}' if f'gan:{name}' in sets.p_real else 'own']
  else:
    keys = []
  k = next(iter(sets.p_real.values())).shape[0]
  scores = [sets.p_real[key] for key in keys]
  return (np.concatenate(scores, axis=1) if scores else np.zeros((k, 0), np.float32)), keys


def score_sets(scorer: Scorer, splits: pipeline.StudySplits, own_test_fakes: np.ndarray,
               own_validation_fakes: np.ndarray, shared_fakes: dict[str, np.ndarray]) -> ScoreSets:
  """Scores every image set once, under every checkpoint of the scorer's detector.

  Own fakes are [K, N, ...] (a GAN's checkpoints each have their own generator); shared
  fakes are [N, ...], scored by every checkpoint.
  """
  p_real = {
      'seen': scorer.score(splits.test_seen),
      'anomaly': scorer.score(splits.test_anomaly),
      'validation_reals': scorer.score(splits.validation),
      'own': scorer.score_own(own_test_fakes),
      'own_validation': scorer.score_own(own_validation_fakes),
  }
  p_real.update({key: scorer.score(images) for key, images in shared_fakes.items()})
  images = {'seen': splits.test_seen, 'anomaly': splits.test_anomaly, 'own': own_test_fakes}
  return ScoreSets(p_real=p_real, images=images)


@dataclasses.dataclass(frozen=True)
class Detector:
  """What a report says of the detector it evaluates."""
  name: str
  architecture: str
  steps: list[int]
  trained_on: tuple[str, ...]  # The generators whose fakes are its 'own'.


def gan_detector(config: ml_collections.ConfigDict, gan: StackedGan) -> Detector:
  return Detector(name=gan.name, architecture=config.gans[gan.name].architecture,
                  steps=gan.steps, trained_on=(gan.name,))


def evaluate_detector(config: ml_collections.ConfigDict, detector: Detector,
                      sets: ScoreSets) -> list[dict]:
  """The report of every checkpoint of a detector: all splits, thresholds and operating points."""
  bins = config.evaluation.num_histogram_bins
  validation_prob, validation_labels = _labelled(sets.p_real['validation_reals'],
                                                 sets.p_real['own_validation'])
  thresholds = _choose_thresholds(validation_prob, validation_labels,
                                  config.evaluation.fake_recall_target)
  all_reals, all_real_images = real_source('all', sets)
  # What each threshold costs the marketplace: real test uploads flagged, own fakes caught.
  prob, labels = _labelled(all_reals, sets.p_real['own'])
  uploads = _split_metrics(prob, labels, thresholds, bins)['report']

  raw_splits, split_info = {}, {}
  for split_name, split in config.evals.items():
    reals, _ = real_source(split.reals, sets)
    fakes, fake_sets = fake_source(split.fakes, sets, detector.trained_on,
                                   list(study_generators(config)))
    if not reals.shape[1] and not fakes.shape[1]:
      logging.warning('Split %s of %s has no images (fakes: %r); skipped.', split_name,
                      detector.name, split.fakes)
      continue
    prob, labels = _labelled(reals, fakes)
    raw = dict(_split_metrics(prob, labels, thresholds, bins))
    paired_with = None
    if not (reals.shape[1] and fakes.shape[1]):
      # One class only: paired with its counterpart for the threshold-free metrics.
      paired_with = 'own fakes' if reals.shape[1] else 'all test reals'
      prob, labels = (_labelled(reals, sets.p_real['own']) if reals.shape[1]
                      else _labelled(all_reals, fakes))
    raw['threshold_free'] = _threshold_free(prob, labels)
    raw_splits[split_name] = raw
    split_info[split_name] = {
        'reals': split.reals, 'fakes': split.fakes, 'fake_sets': fake_sets,
        'paired_with': paired_with,
        'support': {'real': int(reals.shape[1]), 'generated': int(fakes.shape[1])}}

  names = threshold_names(config)
  reports = []
  for k, step in enumerate(detector.steps):
    at_k = lambda tree: metrics.to_python(jax.tree.map(lambda leaf: np.asarray(leaf)[k], tree))
    chosen = at_k(thresholds)
    upload_report = at_k(uploads)
    report = {
        'detector': detector.name,
        'architecture': detector.architecture,
        'trained_on': list(detector.trained_on),
        'step': step,
        'thresholds': dict(zip(names, chosen)),
        'operating_points': {
            name: {'threshold': chosen[t],
                   'review_load': 1.0 - upload_report['real']['recall'][t],
                   'fake_recall': upload_report['generated']['recall'][t]}
            for t, name in enumerate(names)},
        'splits': {},
    }
    for split_name, raw in raw_splits.items():
      values = at_k(raw)
      report['splits'][split_name] = {
          **split_info[split_name],
          'at_threshold': {
              name: {'confusion_matrix': values['confusion_matrix'][t],
                     **_pick(values['report'], t)}
              for t, name in enumerate(names)},
          'threshold_free': values['threshold_free'],
          'histogram': {'bins': bins, 'real': values['histogram_real'],
                        'generated': values['histogram_generated']},
      }
    report['mistakes'] = _most_confident_mistakes(all_reals[k], all_real_images,
                                                  sets.p_real['own'][k], sets.images['own'][k])
    reports.append(report)
  return reports


MISTAKES_PER_KIND = 8


def _most_confident_mistakes(real_p_real, real_images, fake_p_real, fake_images) -> dict:
  """The reals most surely called generated, and the fakes most surely called real."""
  reals = np.argsort(real_p_real, kind='stable')[:MISTAKES_PER_KIND]
  fakes = np.argsort(-fake_p_real, kind='stable')[:MISTAKES_PER_KIND]
  return {'reals_called_generated': (real_images[reals], 1.0 - real_p_real[reals]),
          'generated_called_real': (fake_images[fakes], 1.0 - fake_p_real[fakes])}


def _pick(tree, index: int):
  """The `index`-th entry of every list leaf of a nested dict (one threshold's values)."""
  if isinstance(tree, dict):
    return {key: _pick(value, index) for key, value in tree.items()}
  return tree[index]


def select_steps(available: list[int], which: str) -> list[int]:
  """'latest', 'all', or comma-separated steps -> the steps to evaluate."""
  if not available:
    return []
  if which == 'latest':
    return available[-1:]
  if which == 'all':
    return available
  wanted = [int(step) for step in which.split(',')]
  missing = sorted(set(wanted) - set(available))
  if missing:
    raise CheckpointNotFoundError(f'No checkpoint of steps {missing}; available: {available}.')
  return wanted


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                     which_steps: str = 'latest', mesh: Mesh | None = None,
                     splits: pipeline.StudySplits | None = None,
                     other_fakes: dict[str, np.ndarray] | None = None) -> dict[str, list[dict]]:
  """Evaluates the chosen checkpoints of every GAN of `config` in `workdir`.

  Cross-GAN fakes come from each other GAN's latest checkpoint, and from `other_fakes`
  (test fakes of generators that are not GANs of this workdir, by name). Returns the
  reports by GAN name, one per evaluated step.
  """
  workdir = pathlib.Path(workdir)
  mesh = sharding.build_mesh() if mesh is None else mesh
  splits = pipeline.load_study_splits(config) if splits is None else splits
  gans, scorers, samplers, own_fakes = {}, {}, {}, {}
  for name in config.gans:
    available = checkpoint_steps(workdir, name)
    if not available:
      raise CheckpointNotFoundError(
          f"No checkpoint of GAN '{name}' in {workdir / name / 'checkpoints'}: train it first "
          f'(python -m fakejax.main --workdir={workdir} ...).')
    steps = select_steps(available, which_steps)
    if available[-1] not in steps:
      steps.append(available[-1])  # Its fakes serve the other GANs' cross-GAN splits.
    gans[name] = restore_gan(config, workdir, name, steps, mesh)
    scorers[name] = gan_scorer(gans[name], mesh, config.evaluation.batch_size)
    samplers[name] = Sampler(gans[name], mesh, config.evaluation.batch_size)
    own_fakes[name] = samplers[name].generate(config.evaluation.num_fake_samples,
                                              config.seed + TEST_FAKES_SEED_OFFSET)
  shared = {f'gan:{name}': fakes[-1] for name, fakes in own_fakes.items()}
  shared.update({f'gan:{name}': fakes for name, fakes in (other_fakes or {}).items()})
  shared.update(folder_fakes(config))
  reports = {}
  for name, gan in gans.items():
    own_shared = {key: images for key, images in shared.items() if key != f'gan:{name}'}
    own_validation_fakes = samplers[name].generate(config.evaluation.num_fake_samples,
                                                   config.seed + VALIDATION_FAKES_SEED_OFFSET)
    sets = score_sets(scorers[name], splits, own_fakes[name], own_validation_fakes, own_shared)
    wanted = set(select_steps(gan.steps, which_steps))
    reports[name] = [r for r in evaluate_detector(config, gan_detector(config, gan), sets)
                     if r['step'] in wanted]
    logging.info('Evaluated %s at steps %s.', name, [r['step'] for r in reports[name]])
  return reports


def folder_fakes(config: ml_collections.ConfigDict,
                 shape: tuple[int, int, int] = (28, 28, 1)) -> dict[str, np.ndarray]:
  """Fakes read from the image folders named in config.evals, by their source name."""
  out = {}
  for split in config.evals.values():
    if split.fakes.startswith('folder:') and split.fakes not in out:
      out[split.fakes] = folders.load_image_folder(split.fakes[len('folder:'):],
                                                   shape=shape).images
  return out
