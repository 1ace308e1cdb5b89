"""Detector metrics against scikit-learn and against a plain NumPy loop."""

import jax
import numpy as np
import pytest
from sklearn import metrics as sk

from fakejax.evaluation import metrics


def random_case(seed, n=300, ties=False):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  fake_prob = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1).astype(np.float32)
  if ties:
    fake_prob = np.round(fake_prob * 8) / 8  # Few distinct values: many tied scores.
  return fake_prob, labels


CASES = {
    'random': random_case(0),
    'ties': random_case(1, ties=True),
    'all_correct': (np.array([0.9, 0.8, 0.7, 0.2, 0.1], np.float32), np.array([1, 1, 1, 0, 0])),
    'all_wrong': (np.array([0.1, 0.2, 0.3, 0.8, 0.9], np.float32), np.array([1, 1, 1, 0, 0])),
    'all_tied': (np.full(6, 0.5, np.float32), np.array([1, 0, 1, 0, 0, 1])),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_threshold_free_metrics_match_scikit_learn(case):
  fake_prob, labels = CASES[case]
  got = metrics.to_python(jax.jit(metrics.threshold_free_metrics)(fake_prob, labels))
  assert got['roc_auc'] == pytest.approx(sk.roc_auc_score(labels, fake_prob), abs=1e-6)
  assert got['average_precision'] == pytest.approx(
      sk.average_precision_score(labels, fake_prob), abs=1e-6)


def numpy_loop_eer(fake_prob, labels):
  """EER by walking every distinct threshold, as a reviewer would by hand."""
  points = [(0.0, 1.0)]  # (fpr, fnr) when nothing is called generated.
  for threshold in sorted(set(fake_prob.tolist()), reverse=True):
    called = fake_prob >= threshold
    points.append((np.mean(called[labels == 0]), np.mean(~called[labels == 1])))
  for (fpr0, fnr0), (fpr1, fnr1) in zip(points, points[1:]):
    if fpr0 - fnr0 <= 0 <= fpr1 - fnr1:
      t = 0.0 if fpr1 - fnr1 == fpr0 - fnr0 else (fnr0 - fpr0) / ((fpr1 - fnr1) - (fpr0 - fnr0))
      return fpr0 + t * (fpr1 - fpr0)
  raise AssertionError('no crossing')


@pytest.mark.parametrize('case', sorted(CASES))
def test_equal_error_rate_matches_a_numpy_loop(case):
  fake_prob, labels = CASES[case]
  got = metrics.to_python(metrics.threshold_free_metrics(fake_prob, labels))['eer']
  assert got == pytest.approx(numpy_loop_eer(fake_prob, labels), abs=1e-6)


def test_equal_error_rate_of_a_perfect_and_an_inverted_detector():
  fake_prob, labels = CASES['all_correct']
  assert metrics.to_python(metrics.threshold_free_metrics(fake_prob, labels))['eer'] == 0.0
  fake_prob, labels = CASES['all_wrong']
  assert metrics.to_python(metrics.threshold_free_metrics(fake_prob, labels))['eer'] == 1.0


@pytest.mark.parametrize('case', sorted(CASES))
@pytest.mark.parametrize('threshold', [0.5, 0.3])
def test_classification_report_matches_scikit_learn(case, threshold):
  fake_prob, labels = CASES[case]
  called = (fake_prob >= threshold).astype(int)
  confusion = metrics.confusion_matrix(fake_prob, labels, threshold)
  np.testing.assert_array_equal(confusion, sk.confusion_matrix(labels, called, labels=[1, 0]))
  got = metrics.to_python(metrics.classification_report(confusion))
  want = sk.classification_report(labels, called, labels=[1, 0], target_names=['generated', 'real'],
                                  output_dict=True, zero_division=0)
  assert got['accuracy'] == pytest.approx(sk.accuracy_score(labels, called))
  for name in ('generated', 'real', 'macro avg', 'weighted avg'):
    for metric in ('precision', 'recall', 'f1-score', 'support'):
      value = got[name]['f1' if metric == 'f1-score' else metric]
      value = 0.0 if np.isnan(value) else value
      assert value == pytest.approx(want[name][metric], abs=1e-6), (name, metric)


def test_one_class_split_reports_recall_and_leaves_the_other_class_undefined():
  fake_prob = np.array([0.1, 0.2, 0.7, 0.4], np.float32)
  labels = np.zeros(4, int)  # Real images only.
  report = metrics.to_python(metrics.classification_report(
      metrics.confusion_matrix(fake_prob, labels, 0.5)))
  assert report['real']['recall'] == 0.75
  assert report['real']['precision'] == 1.0
  assert report['generated']['support'] == 0
  assert np.isnan(report['generated']['recall'])
  assert report['accuracy'] == 0.75


def test_youden_and_fake_recall_thresholds_match_a_numpy_search():
  fake_prob, labels = CASES['random']
  points = metrics.roc_points(fake_prob, labels)
  candidates = sorted(set(fake_prob.tolist()))
  tpr = lambda t: np.mean(fake_prob[labels == 1] >= t)
  fpr = lambda t: np.mean(fake_prob[labels == 0] >= t)
  best_j = max(candidates, key=lambda t: (tpr(t) - fpr(t), t))
  assert float(metrics.youden_threshold(points)) == pytest.approx(best_j)
  highest_95 = max(t for t in candidates if tpr(t) >= 0.95)
  assert float(metrics.threshold_for_fake_recall(points, 0.95)) == pytest.approx(highest_95)


@pytest.mark.parametrize('budget', [0.01, 0.02, 0.05, 0.3])
def test_review_budget_threshold_is_the_lowest_that_flags_at_most_the_budget(budget):
  fake_prob, labels = CASES['random']
  points = metrics.roc_points(fake_prob, labels)
  candidates = sorted(set(fake_prob.tolist()))
  flagged = lambda t: np.mean(fake_prob[labels == 0] >= t)
  within = [t for t in candidates if flagged(t) <= budget]
  want = min(within) if within else np.nextafter(np.float32(1), np.float32(2))
  got = float(metrics.threshold_for_review_budget(points, budget))
  assert got == pytest.approx(want)
  assert flagged(got) <= budget


def test_a_budget_no_threshold_meets_flags_nothing():
  fake_prob = np.array([0.9, 0.8, 0.1], np.float32)  # The top score is a real's.
  labels = np.array([0, 1, 1], np.int32)
  threshold = metrics.threshold_for_review_budget(metrics.roc_points(fake_prob, labels), 0.2)
  assert float(threshold) > 1.0 and not np.any(fake_prob >= float(threshold))


def test_metrics_vectorise_over_stacked_checkpoints():
  cases = [random_case(seed) for seed in range(3)]
  fake_prob = np.stack([c[0] for c in cases])
  labels = np.stack([c[1] for c in cases])
  stacked = jax.vmap(metrics.threshold_free_metrics)(fake_prob, labels)
  for i, (p, l) in enumerate(cases):
    assert float(stacked['roc_auc'][i]) == pytest.approx(sk.roc_auc_score(l, p), abs=1e-6)


def test_histogram_counts_every_score_once():
  counts = metrics.histogram(np.array([0.0, 0.05, 0.5, 0.99, 1.0], np.float32), num_bins=10)
  np.testing.assert_array_equal(counts, [2, 0, 0, 0, 0, 1, 0, 0, 0, 2])


def test_a_perfect_detector_scores_at_most_one_despite_float32_rounding():
  # 95 reals and 128 fakes, perfectly separated: the float32 trapezoid sum of this case,
  # vmapped and jitted as the evaluator runs it, came to 1.0000001 before clipping.
  rng = np.random.default_rng(0)
  labels = np.r_[np.zeros(95), np.ones(128)].astype(np.int32)
  fake_prob = np.r_[rng.uniform(0.0, 0.4, 95), rng.uniform(0.6, 1.0, 128)].astype(np.float32)
  values = jax.jit(jax.vmap(metrics.threshold_free_metrics, in_axes=(0, None)))(
      fake_prob[None], labels)
  assert float(values['roc_auc'][0]) == 1.0
  assert float(values['average_precision'][0]) == 1.0
