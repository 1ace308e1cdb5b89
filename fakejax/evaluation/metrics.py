"""Detector metrics, computed once for every split, in JAX (jittable, vmappable).

Conventions: the positive class is "generated"; a detector gives each image a fake
probability f in [0, 1], and calls it generated when f >= threshold. Labels are 1 for
generated, 0 for real. Threshold-free metrics follow scikit-learn's definitions (tied
scores form one operating point).
"""

import jax
import jax.numpy as jnp
import numpy as np

CLASS_NAMES = ('generated', 'real')


def confusion_matrix(fake_prob: jax.Array, labels: jax.Array, threshold) -> jax.Array:
  """[[TP, FN], [FP, TN]]: rows are the true class (generated, real), columns the call."""
  called_fake = fake_prob >= threshold
  is_fake = labels == 1
  tp = jnp.sum(called_fake & is_fake)
  fn = jnp.sum(~called_fake & is_fake)
  fp = jnp.sum(called_fake & ~is_fake)
  tn = jnp.sum(~called_fake & ~is_fake)
  return jnp.array([[tp, fn], [fp, tn]])


def _ratio(numerator, denominator):
  """numerator / denominator, NaN where the denominator is 0 (undefined, not 0)."""
  denominator = jnp.asarray(denominator, jnp.float32)
  return jnp.where(denominator > 0, numerator / jnp.where(denominator > 0, denominator, 1),
                   jnp.nan)


def classification_report(confusion: jax.Array) -> dict:
  """Per-class precision/recall/F1/support, accuracy, macro and weighted averages.

  The layout of scikit-learn's classification_report, from a confusion matrix.
  """
  confusion = confusion.astype(jnp.float32)
  support = confusion.sum(axis=1)  # True examples per class.
  called = confusion.sum(axis=0)  # Examples called each class.
  correct = jnp.diagonal(confusion)
  precision = _ratio(correct, called)
  recall = _ratio(correct, support)
  f1 = _ratio(2 * precision * recall, precision + recall)
  # Like scikit-learn: a class with no true examples has recall 0 in the averages,
  # precision 0 when never called, and weight 0 in the weighted average.
  in_average = lambda values: jnp.where(jnp.isnan(values), 0.0, values)
  report = {name: {'precision': precision[i], 'recall': recall[i], 'f1': f1[i],
                   'support': support[i]} for i, name in enumerate(CLASS_NAMES)}
  report['accuracy'] = correct.sum() / confusion.sum()
  for average, weights in (('macro avg', jnp.ones(2)), ('weighted avg', support)):
    weights = weights / weights.sum()
    report[average] = {
        metric: jnp.sum(weights * in_average(values))
        for metric, values in (('precision', precision), ('recall', recall), ('f1', f1))}
    report[average]['support'] = support.sum()
  return report


def roc_points(fake_prob: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """ROC and precision-recall operating points, one per example (static shape).

  Examples are sorted by decreasing fake probability; `is_point` marks the last example of
  each group of tied scores, the only places a threshold can separate.
  """
  order = jnp.argsort(-fake_prob, stable=True)
  scores = fake_prob[order]
  positives = labels[order].astype(jnp.float32)
  tps = jnp.cumsum(positives)
  fps = jnp.cumsum(1.0 - positives)
  is_point = jnp.concatenate([scores[1:] != scores[:-1], jnp.array([True])])
  return {'threshold': scores, 'tps': tps, 'fps': fps, 'is_point': is_point,
          'tpr': _ratio(tps, tps[-1]), 'fpr': _ratio(fps, fps[-1])}


def _previous_point(values: jax.Array, is_point: jax.Array) -> jax.Array:
  """The value at the previous operating point (0 before the first): values are non-decreasing."""
  at_points = jnp.where(is_point, values, 0.0)
  return jnp.concatenate([jnp.zeros(1), jax.lax.cummax(at_points)[:-1]])


def roc_auc(points: dict) -> jax.Array:
  """Area under the ROC curve (trapezoids between operating points).

  Clipped to [0, 1]: float32 rounding of a perfect detector's sum can exceed 1 by an ulp.
  """
  fpr, tpr, is_point = points['fpr'], points['tpr'], points['is_point']
  widths = fpr - _previous_point(fpr, is_point)
  heights = (tpr + _previous_point(tpr, is_point)) / 2
  return jnp.clip(jnp.sum(jnp.where(is_point, widths * heights, 0.0)), 0.0, 1.0)


def average_precision(points: dict) -> jax.Array:
  """Sum over operating points of (recall step) x precision, as scikit-learn defines AP."""
  tpr, is_point = points['tpr'], points['is_point']
  precision = points['tps'] / (points['tps'] + points['fps'])
  steps = tpr - _previous_point(tpr, is_point)
  return jnp.clip(jnp.sum(jnp.where(is_point, steps * precision, 0.0)), 0.0, 1.0)


def equal_error_rate(points: dict) -> jax.Array:
  """Where the false-positive rate equals the false-negative rate, linearly interpolated."""
  fpr, fnr, is_point = points['fpr'], 1.0 - points['tpr'], points['is_point']
  # Operating points, starting from "nothing called generated" (fpr 0, fnr 1).
  fpr_prev, fnr_prev = _previous_point(fpr, is_point), 1.0 - _previous_point(points['tpr'], is_point)
  crosses = is_point & (fpr >= fnr) & (fpr_prev <= fnr_prev)
  # On the segment between the two points, fpr - fnr goes from <= 0 to >= 0.
  gap_prev, gap = fpr_prev - fnr_prev, fpr - fnr
  t = jnp.where(gap - gap_prev > 0, -gap_prev / jnp.where(gap - gap_prev > 0, gap - gap_prev, 1), 0.0)
  eer = fpr_prev + t * (fpr - fpr_prev)
  first = jnp.argmax(crosses)
  return eer[first]


def youden_threshold(points: dict) -> jax.Array:
  """The threshold maximising TPR - FPR (Youden's J)."""
  j = jnp.where(points['is_point'], points['tpr'] - points['fpr'], -jnp.inf)
  return points['threshold'][jnp.argmax(j)]


def threshold_for_fake_recall(points: dict, recall: float) -> jax.Array:
  """The highest threshold whose recall of generated images is at least `recall`."""
  reaches = points['is_point'] & (points['tpr'] >= recall)
  return points['threshold'][jnp.argmax(reaches)]


def threshold_for_review_budget(points: dict, budget: float) -> jax.Array:
  """The lowest threshold that flags at most `budget` of the reals (the most fakes caught
  within that review load); above every score (flags nothing) if even the highest does."""
  within = points['is_point'] & (points['fpr'] <= budget)
  last = jnp.max(jnp.where(within, jnp.arange(within.shape[0]), -1))
  return jnp.where(last >= 0, points['threshold'][jnp.maximum(last, 0)],
                   jnp.nextafter(jnp.float32(1.0), jnp.float32(2.0)))


ROC_GRID_SIZE = 101


def roc_curve_on_grid(points: dict, num: int = ROC_GRID_SIZE) -> jax.Array:
  """TPR at FPR = 0, 1/(num-1), ..., 1: the ROC curve at fixed points, for plots."""
  grid = jnp.linspace(0.0, 1.0, num)
  reachable = points['is_point'][None, :] & (points['fpr'][None, :] <= grid[:, None] + 1e-7)
  return jnp.max(jnp.where(reachable, points['tpr'][None, :], 0.0), axis=1)


def threshold_free_metrics(fake_prob: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """ROC-AUC, average precision, equal error rate and the ROC curve on a grid.

  Both classes must be present.
  """
  points = roc_points(fake_prob, labels)
  return {'roc_auc': roc_auc(points), 'average_precision': average_precision(points),
          'eer': equal_error_rate(points), 'roc_curve_tpr': roc_curve_on_grid(points)}


def histogram(fake_prob: jax.Array, num_bins: int = 20, where: jax.Array | None = None) -> jax.Array:
  """Counts of fake probabilities (those where `where` is true) in equal bins over [0, 1]."""
  bins = jnp.clip((fake_prob * num_bins).astype(jnp.int32), 0, num_bins - 1)
  counts = jnp.ones_like(bins) if where is None else where.astype(jnp.int32)
  return jnp.zeros(num_bins, jnp.int32).at[bins].add(counts)


def to_python(tree):
  """Device values -> plain floats/ints/lists, for JSON."""
  def convert(value):
    value = np.asarray(value)
    if value.ndim:
      return value.tolist()
    return int(value) if np.issubdtype(value.dtype, np.integer) else float(value)
  return jax.tree.map(convert, jax.device_get(tree))
