"""The real-only detector: a PixelCNN of reals, its surprise score and its training on
reals alone; in the session's detectors study, thresholds from validation reals only."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import detectors_fmnist
from fakejax import config as config_lib, predict
from fakejax.data import pipeline
from fakejax.evaluation import assemble, marketplace, restore
from fakejax.models.pixelcnn import NUM_LEVELS, PixelCnn
from fakejax.train import classifier_steps, likelihood_steps, optimizers, real_only_trainer
from fakejax.workdir import Workdir

DETECTOR = 'pixelcnn_reals'  # The `,real_only` option's detector.


def test_the_pixelcnn_never_sees_the_pixel_it_predicts_or_any_later_one():
  model = PixelCnn(features=8, num_layers=2)
  images = jax.random.uniform(jax.random.PRNGKey(0), (1, 6, 6, 1), minval=-1, maxval=1)
  params = model.init(jax.random.PRNGKey(1), images)['params']
  logits = model.apply({'params': params}, images)
  assert logits.shape == (1, 6, 6, 1, NUM_LEVELS)
  row, column = 2, 3
  changed = model.apply({'params': params}, images.at[0, row, column, 0].set(0.9))
  differs = np.asarray(jnp.any(changed != logits, axis=(-1, -2)))[0]  # [6, 6]
  raster = np.arange(36).reshape(6, 6)
  assert not differs[raster <= raster[row, column]].any()
  assert differs[raster > raster[row, column]].any()  # Later pixels do see it.


def random_log_probs(key, shape):
  return jax.nn.log_softmax(2.0 * jax.random.normal(key, (*shape, NUM_LEVELS)), axis=-1)


def test_images_drawn_from_the_model_are_unsurprising_and_its_modes_are_not():
  log_probs = random_log_probs(jax.random.PRNGKey(0), (1, 8, 8, 1))
  drawn = jax.random.categorical(jax.random.PRNGKey(1), log_probs[0], shape=(2000, 8, 8, 1))
  z = np.asarray(likelihood_steps.surprise(
      jnp.broadcast_to(log_probs, (2000, 8, 8, 1, NUM_LEVELS)), drawn.astype(jnp.uint8)))
  assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1  # Standardised under the model.
  modes = jnp.argmax(log_probs, axis=-1).astype(jnp.uint8)
  assert float(likelihood_steps.surprise(log_probs, modes)[0]) < -3  # Too predictable.


def test_the_surprise_equals_its_textbook_form_in_bits():
  logits = 3.0 * jax.random.normal(jax.random.PRNGKey(2), (4, 5, 6, 1, NUM_LEVELS))
  images = jax.random.randint(jax.random.PRNGKey(3), (4, 5, 6, 1), 0, NUM_LEVELS).astype(jnp.uint8)
  bits = -jax.nn.log_softmax(logits, axis=-1) / np.log(2.0)
  probs = jnp.exp(-bits * np.log(2.0))
  entropy = jnp.sum(probs * bits, axis=-1)
  variance = jnp.sum(probs * bits**2, axis=-1) - entropy**2
  cost = jnp.take_along_axis(bits, images.astype(jnp.int32)[..., None], axis=-1)[..., 0]
  want = (jnp.sum(cost - entropy, axis=(1, 2, 3))
          / jnp.sqrt(jnp.sum(variance, axis=(1, 2, 3)) + 1e-6))
  np.testing.assert_allclose(likelihood_steps.surprise(logits, images), want, rtol=1e-4,
                             atol=1e-4)


def tiny_real_only():
  return detectors_fmnist.get_config('tiny,real_only').real_only[DETECTOR]


def test_the_step_learns_the_reals_likelihood_and_ignores_any_fakes():
  cfg = tiny_real_only()
  cfg.optimizer.learning_rate = 0.01
  model = real_only_trainer.model_of(cfg)
  tx = optimizers.from_config(cfg.optimizer)
  state = classifier_steps.init_state(model, tx, lambda frozen, x: x, {}, (8, 8, 1),
                                      jax.random.PRNGKey(0))
  step = jax.jit(likelihood_steps.make_train_step(model, tx))
  rng = np.random.default_rng(0)
  reals = (rng.integers(0, 4, (16, 8, 8, 1)) * 60).astype(np.uint8)  # Four grey levels.
  batch = real_only_trainer.train_set(reals)
  fakes = rng.integers(0, 256, (16, 8, 8, 1)).astype(np.uint8)
  mixed = {'image': np.concatenate([reals, fakes]),
           'label': np.concatenate([batch['label'], np.zeros(16, np.int32)])}
  _, alone = step(state, batch)
  _, with_fakes = step(state, mixed)
  assert float(alone['bits_per_dim']) == pytest.approx(float(with_fakes['bits_per_dim']), rel=1e-5)
  first = float(alone['bits_per_dim'])
  for _ in range(40):
    state, metrics = step(state, batch)
  assert float(metrics['bits_per_dim']) < first - 2.0  # Towards 2 bits: it learnt the levels.


def test_the_model_of_uploads_sees_reals_resized_and_recompressed_and_the_other_pristine():
  config = detectors_fmnist.get_config('tiny,real_only')
  job = lambda name: real_only_trainer.real_only_job(name, config.real_only[name], (28, 28, 1),
                                                      False)
  assert job(DETECTOR).augment is None
  reals = (np.random.default_rng(0).random((64, 28, 28, 1)) * 255).astype(np.uint8)
  config.real_only.pixelcnn_uploads = detectors_fmnist.real_only_model('tiny', as_uploaded=True)
  batch = job('pixelcnn_uploads').augment(real_only_trainer.train_set(reals),
                                          np.random.default_rng(1))
  changed = np.any(batch['image'] != reals, axis=(1, 2, 3))
  assert 0 < changed.mean() < 1  # About three quarters: JPEG or resampling, half the time each.
  assert (batch['label'] == classifier_steps.REAL_LABEL).all()


def test_a_real_only_detector_needs_a_name_of_its_own_and_a_known_architecture():
  config = detectors_fmnist.get_config('tiny,real_only')
  config.real_only[DETECTOR].architecture = 'flow'
  with pytest.raises(config_lib.ConfigError, match=f'real_only.{DETECTOR}.architecture'):
    config_lib.check_detectors(config, 1)
  config = detectors_fmnist.get_config('tiny,real_only')
  config.real_only.pooled_all = config.real_only[DETECTOR]
  with pytest.raises(config_lib.ConfigError, match='shares names'):
    config_lib.check_detectors(config, 1)


def test_its_thresholds_come_from_validation_reals_alone(detectors_study):
  report_path = next((detectors_study / 'real_only' / DETECTOR / 'eval').glob('*/report.json'))
  report = json.loads(report_path.read_text())
  assert report['trained_on'] == []
  assert report['splits']['own_fakes_vs_reals']['support']['generated'] == 0  # No own fakes.
  # The validation reals alone, scored again through `predict`, give every threshold.
  config = restore.workdir_config(Workdir(detectors_study))
  budget = assemble.budget_threshold(config.evaluation)
  detector = predict.load_detector(detectors_study, DETECTOR, -1, budget, batch_size=32)
  assert detector.threshold == pytest.approx(report['thresholds'][budget])
  reals = pipeline.load_study_splits(config.data, config.seed).validation
  fake_prob = 1.0 - detector.scorer.score(reals)
  thresholds = assemble.choose_thresholds(
      jnp.asarray(fake_prob[0]), jnp.zeros(len(reals), jnp.int32),
      config.evaluation.fake_recall_target, assemble.review_budgets(config.evaluation),
      with_fakes=False)
  names = assemble.threshold_names(config.evaluation)
  np.testing.assert_allclose(np.asarray(thresholds), [report['thresholds'][n] for n in names],
                             rtol=1e-5)
  assert np.mean(fake_prob[0] >= detector.threshold) <= config.evaluation.review_budget
  # With no fakes to choose them from, Youden's threshold (predict's default) is the budget's.
  assert report['thresholds']['youden'] == report['thresholds'][budget]


def test_its_one_class_splits_pair_with_every_generators_fakes(detectors_study):
  report_path = next((detectors_study / 'real_only' / DETECTOR / 'eval').glob('*/report.json'))
  split = json.loads(report_path.read_text())['splits']['anomaly_class_reals']
  assert split['paired_with'] == "every generator's fakes"
  assert 0.0 < split['threshold_free']['average_precision'] <= 1.0


def test_the_ranking_judges_a_real_only_detector_on_every_family(detectors_study):
  candidates = {c.detector: c for c in marketplace.study_candidates(detectors_study, [])}
  families = [row['family'] for row in candidates[DETECTOR].rows_by_seed[None]]
  config = restore.workdir_config(Workdir(detectors_study))
  assert sorted(families) == sorted(config.families)
