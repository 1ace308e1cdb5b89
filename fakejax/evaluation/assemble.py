"""Assembling a detector's report from its scores: thresholds, splits, operating points.

Every image set is scored once per checkpoint (`score_sets`); the splits of `config.evals`
are then assembled from those score sets. Operating points are chosen on the validation
split, never on test. Metrics are vmapped over the stacked checkpoints.
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from fakejax.data import folders, perturb, pipeline
from fakejax.evaluation import metrics, scoring


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


def choose_thresholds(fake_prob: jax.Array, labels: jax.Array, fake_recall_target: float,
                      review_budgets: tuple[float, ...], with_fakes: bool = True) -> jax.Array:
  """[0.5, Youden's J, lowest fake recall >= target, then for each review budget the
  lowest with at most that share of reals flagged], chosen on validation scores.

  Without fakes (a detector trained on reals alone), Youden's and the fake-recall
  threshold, which need fakes, stand at the first review budget's, chosen on reals alone.
  """
  points = metrics.roc_points(fake_prob, labels)
  budgets = [metrics.threshold_for_review_budget(points, budget) for budget in review_budgets]
  needing_fakes = ([metrics.youden_threshold(points),
                    metrics.threshold_for_fake_recall(points, fake_recall_target)]
                   if with_fakes else [budgets[0]] * 2)
  return jnp.stack([jnp.float32(0.5), *needing_fakes, *budgets])


def review_budgets(evaluation: ml_collections.ConfigDict) -> tuple[float, ...]:
  """The marketplace's review budget (the tables'), then the others reports compare."""
  return (evaluation.review_budget, *evaluation.more_review_budgets)


def threshold_names(evaluation: ml_collections.ConfigDict) -> list[str]:
  """The names of `choose_thresholds`'s thresholds, for a config's `evaluation` group."""
  return ['default_0.5', 'youden', f'fake_recall_{evaluation.fake_recall_target:g}',
          *(f'review_budget_{budget:g}' for budget in review_budgets(evaluation))]


def budget_threshold(evaluation: ml_collections.ConfigDict) -> str:
  """The name of the threshold that flags at most `review_budget` of validation reals."""
  return f'review_budget_{evaluation.review_budget:g}'


_split_metrics = jax.jit(jax.vmap(split_metrics, in_axes=(0, None, 0, None)), static_argnums=3)
_threshold_free = jax.jit(jax.vmap(metrics.threshold_free_metrics, in_axes=(0, None)))
_choose_thresholds = jax.jit(jax.vmap(choose_thresholds, in_axes=(0, None, None, None, None)),
                             static_argnums=(2, 3, 4))


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


def _real_parts(source: str) -> list[str]:
  """The score sets a `reals` source of config.evals pools: 'all@jpeg_75' is
  ['seen@jpeg_75', 'anomaly@jpeg_75']."""
  base, perturbation = perturb.split_source(source)
  parts = {'seen': ['seen'], 'anomaly': ['anomaly'], 'all': ['seen', 'anomaly'], '': []}[base]
  return [f'{part}@{perturbation}' for part in parts] if perturbation else parts


def perturbed_reals(evals: ml_collections.ConfigDict,
                    splits: pipeline.StudySplits) -> dict[str, np.ndarray]:
  """The perturbed test reals that config.evals names (e.g. 'seen@jpeg_75'), by score set."""
  test = {'seen': splits.test_seen, 'anomaly': splits.test_anomaly}
  out = {}
  for split in evals.values():
    for part in _real_parts(split.reals):
      base, perturbation = perturb.split_source(part)
      if perturbation and part not in out:
        out[part] = perturb.perturb(test[base], perturbation)
  return out


def real_source(name: str, sets: ScoreSets) -> tuple[np.ndarray, np.ndarray]:
  """(P(real) [K, N], images [N, ...]) of a `reals` source of config.evals."""
  parts = _real_parts(name)
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


def score_sets(scorer: scoring.Scorer, splits: pipeline.StudySplits, own_test_fakes: np.ndarray,
               own_validation_fakes: np.ndarray, shared_fakes: dict[str, np.ndarray],
               more_reals: dict[str, np.ndarray] | None = None) -> ScoreSets:
  """Scores every image set once, under every checkpoint of the scorer's detector.

  Own fakes are [K, N, ...] (a GAN's checkpoints each have their own generator); shared
  fakes are [N, ...], scored by every checkpoint, or [K, N, ...], a row per checkpoint
  (replicas of several seeds each meet their own replica's other generators). More reals
  (`perturbed_reals`) are [N, ...].
  """
  more_reals = more_reals or {}
  p_real = {
      'seen': scorer.score(splits.test_seen),
      'anomaly': scorer.score(splits.test_anomaly),
      'validation_reals': scorer.score(splits.validation),
      'own': scorer.score_own(own_test_fakes),
      'own_validation': scorer.score_own(own_validation_fakes),
  }
  p_real.update({key: scorer.score_own(images) if images.ndim == own_test_fakes.ndim
                 else scorer.score(images) for key, images in shared_fakes.items()})
  p_real.update({key: scorer.score(images) for key, images in more_reals.items()})
  images = {'seen': splits.test_seen, 'anomaly': splits.test_anomaly, 'own': own_test_fakes,
            **more_reals}
  return ScoreSets(p_real=p_real, images=images)


@dataclasses.dataclass(frozen=True)
class DetectorInfo:
  """What a report says of the detector it evaluates."""
  name: str
  architecture: str
  steps: list[int]
  trained_on: tuple[str, ...]  # The generators whose fakes are its 'own'.


def gan_detector(gan_config: ml_collections.ConfigDict, name: str,
                 steps: list[int]) -> DetectorInfo:
  return DetectorInfo(name=name, architecture=gan_config.architecture, steps=steps,
                  trained_on=(name,))


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """What to measure: config.evals, config.evaluation, and the study's generators."""
  evals: ml_collections.ConfigDict
  evaluation: ml_collections.ConfigDict
  generators: tuple[str, ...]


def _measure_splits(settings: EvalSettings, detector: DetectorInfo, sets: ScoreSets,
                    thresholds: jax.Array) -> tuple[dict, dict]:
  """Metrics [K, ...] of every split with images, and what each split holds."""
  all_reals, _ = real_source('all', sets)
  bins = settings.evaluation.num_histogram_bins
  raw_splits, split_info = {}, {}
  for split_name, split in settings.evals.items():
    reals, _ = real_source(split.reals, sets)
    fakes, fake_sets = fake_source(split.fakes, sets, detector.trained_on, settings.generators)
    if not reals.shape[1] and not fakes.shape[1]:
      logging.warning('Split %s of %s has no images (fakes: %r); skipped.', split_name,
                      detector.name, split.fakes)
      continue
    prob, labels = _labelled(reals, fakes)
    raw = dict(_split_metrics(prob, labels, thresholds, bins))
    paired_with = None
    if not (reals.shape[1] and fakes.shape[1]):
      # One class only: paired with its counterpart for the threshold-free metrics.
      paired_with, counterpart = _counterpart(reals, all_reals, detector, settings, sets)
      prob, labels = (_labelled(reals, counterpart) if reals.shape[1]
                      else _labelled(counterpart, fakes))
    raw['threshold_free'] = _threshold_free(prob, labels)
    raw_splits[split_name] = raw
    split_info[split_name] = {
        'reals': split.reals, 'fakes': split.fakes, 'fake_sets': fake_sets,
        'paired_with': paired_with,
        'support': {'real': int(reals.shape[1]), 'generated': int(fakes.shape[1])}}
  return raw_splits, split_info


def _counterpart(reals: np.ndarray, all_reals: np.ndarray, detector: DetectorInfo,
                 settings: EvalSettings, sets: ScoreSets) -> tuple[str, np.ndarray]:
  """What a one-class split pairs with: reals with own fakes (a detector that trained on
  none, with every generator's), fakes with all test reals."""
  if not reals.shape[1]:
    return 'all test reals', all_reals
  if sets.p_real['own'].shape[1]:
    return 'own fakes', sets.p_real['own']
  return 'every generator\'s fakes', fake_source('others', sets, detector.trained_on,
                                                 settings.generators)[0]


def _split_report(info: dict, values: dict, names: list[str], bins: int) -> dict:
  """One split of one checkpoint's report, from its metrics at that checkpoint."""
  return {
      **info,
      'at_threshold': {
          name: {'confusion_matrix': values['confusion_matrix'][t], **_pick(values['report'], t)}
          for t, name in enumerate(names)},
      'threshold_free': values['threshold_free'],
      'histogram': {'bins': bins, 'real': values['histogram_real'],
                    'generated': values['histogram_generated']},
  }


def evaluate_detector(settings: EvalSettings, detector: DetectorInfo,
                      sets: ScoreSets) -> list[dict]:
  """The report of every checkpoint of a detector: all splits, thresholds and operating points.

  Thresholds are chosen on validation (validation reals and own validation fakes).
  """
  validation_prob, validation_labels = _labelled(sets.p_real['validation_reals'],
                                                 sets.p_real['own_validation'])
  thresholds = _choose_thresholds(validation_prob, validation_labels,
                                  settings.evaluation.fake_recall_target,
                                  review_budgets(settings.evaluation),
                                  bool(sets.p_real['own_validation'].shape[1]))
  all_reals, all_real_images = real_source('all', sets)
  # What each threshold costs the marketplace: real test uploads flagged, own fakes caught.
  prob, labels = _labelled(all_reals, sets.p_real['own'])
  bins = settings.evaluation.num_histogram_bins
  uploads = _split_metrics(prob, labels, thresholds, bins)['report']
  raw_splits, split_info = _measure_splits(settings, detector, sets, thresholds)
  names = threshold_names(settings.evaluation)
  reports = []
  for k, step in enumerate(detector.steps):
    at_k = lambda tree: metrics.to_python(jax.tree.map(lambda leaf: np.asarray(leaf)[k], tree))
    chosen, upload_report = at_k(thresholds), at_k(uploads)
    reports.append({
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
        'splits': {name: _split_report(split_info[name], at_k(raw), names, bins)
                   for name, raw in raw_splits.items()},
        'mistakes': _most_confident_mistakes(all_reals[k], all_real_images,
                                             sets.p_real['own'][k], sets.images['own'][k]),
    })
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


def folder_fakes(evals: ml_collections.ConfigDict,
                 shape: tuple[int, int, int] = (28, 28, 1)) -> dict[str, np.ndarray]:
  """Fakes read from the image folders named in a config's `evals`, by their source name."""
  out = {}
  for split in evals.values():
    if split.fakes.startswith('folder:') and split.fakes not in out:
      out[split.fakes] = folders.load_image_folder(split.fakes[len('folder:'):],
                                                   shape=shape).images
  return out
