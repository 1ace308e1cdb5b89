"""The perturbations uploads go through, and the evaluation's perturbed real sources."""

import ml_collections
import numpy as np
import pytest

from configs import detectors_fmnist
from fakejax import studies
from fakejax.config import ConfigError
from fakejax.data import perturb, pipeline
from fakejax.evaluation import assemble


def images(num=6, channels=1, seed=0) -> np.ndarray:
  """Smooth images with a little texture, as photos are."""
  rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing='ij')
  smooth = 128 + 80 * np.sin(rows / 5.0)[None] * np.cos(cols / 7.0)[None]
  texture = np.random.default_rng(seed).normal(0, 6, (num, 28, 28))
  out = np.clip(smooth + texture, 0, 255).astype(np.uint8)[..., None]
  return np.repeat(out, channels, axis=-1)


def error(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


@pytest.mark.parametrize('channels', [1, 3])
def test_each_perturbation_keeps_shape_and_dtype_and_is_deterministic(channels):
  x = images(channels=channels)
  for name in ('jpeg_75', 'rescale_0.5', 'blur_1', 'noise_0.05'):
    y = perturb.perturb(x, name)
    assert y.shape == x.shape and y.dtype == np.uint8, name
    np.testing.assert_array_equal(y, perturb.perturb(x, name))
    assert error(x, y) > 0.3, name  # It changes the images.


def test_stronger_levels_change_images_more():
  x = images()
  for weak, strong in (('jpeg_95', 'jpeg_50'), ('blur_0.5', 'blur_2'),
                       ('noise_0.01', 'noise_0.1'), ('rescale_0.75', 'rescale_0.25')):
    assert error(x, perturb.perturb(x, weak)) < error(x, perturb.perturb(x, strong)), weak


def test_rescaling_keeps_smooth_images_and_erases_pixel_patterns():
  x = images()
  checkerboard = np.where(np.indices((28, 28)).sum(0) % 2, 255, 0).astype(np.uint8)[None, ..., None]
  assert error(x, perturb.rescale(x, 0.5)) < 6.0
  assert np.ptp(perturb.rescale(checkerboard, 0.5)[0, 4:-4, 4:-4]) < 20  # Near flat grey.


@pytest.mark.parametrize('name', ['jpeg_500', 'sepia_3', 'jpeg', 'blur_x'])
def test_unknown_perturbations_are_named(name):
  with pytest.raises(ValueError, match=f"Unknown perturbation '{name}'.*jpeg_75"):
    perturb.parse(name)


def test_the_evaluation_scores_the_perturbed_reals_its_splits_name():
  splits = pipeline.StudySplits(train=images(2), validation=images(2), test_seen=images(4),
                                test_anomaly=images(3, seed=1))
  evals = ml_collections.ConfigDict(dict(
      a=dict(reals='all@jpeg_50', fakes=''), b=dict(reals='seen@jpeg_50', fakes='own'),
      c=dict(reals='seen', fakes='')))
  more = assemble.perturbed_reals(evals, splits)
  assert sorted(more) == ['anomaly@jpeg_50', 'seen@jpeg_50']
  np.testing.assert_array_equal(more['anomaly@jpeg_50'], perturb.jpeg(splits.test_anomaly, 50))
  p_real = {key: np.arange(len(x), dtype=np.float32)[None] / 10 for key, x in more.items()}
  sets = assemble.ScoreSets(p_real={'seen': np.zeros((1, 4)), **p_real},
                            images={'seen': splits.test_seen, **more})
  scores, pooled = assemble.real_source('all@jpeg_50', sets)
  np.testing.assert_allclose(scores[0], [0, 0.1, 0.2, 0.3, 0, 0.1, 0.2])
  np.testing.assert_array_equal(pooled, np.concatenate([more['seen@jpeg_50'],
                                                        more['anomaly@jpeg_50']]))


@pytest.mark.parametrize('reals,message', [
    ('seen@sepia_1', r"'evals.bad.reals' is 'seen@sepia_1'. Unknown perturbation 'sepia_1'"),
    ('@jpeg_75', r"'evals.bad.reals' is '@jpeg_75': name the reals to perturb"),
    ('fresh@jpeg_75', r"'evals.bad.reals' is 'fresh'")])
def test_perturbed_real_sources_are_checked(reals, message):
  config = detectors_fmnist.get_config('tiny')
  config.evals.bad = dict(reals=reals, fakes='')
  with pytest.raises(ConfigError, match=message):
    studies.validate(config, num_devices=1)
