"""Dedicated classifiers on each generator's fakes and pooled, tested on every generator."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from configs import detectors_fmnist, detectors_folder
from fakejax import config as config_lib, errors, sharding, studies
from fakejax.config import ConfigError
from fakejax.data import image_sets
from fakejax.models import CLASSIFIERS
from fakejax.evaluation import marketplace
from fakejax.studies import dedicated as detectors
from fakejax.train import classifier_steps, classifier_trainer, loop, replicas
from fakejax.workdir import RunDir
from tests.conftest import GANS, rerun_evaluation
from tools import rank_detectors


@pytest.fixture
def study(detectors_study):
  return detectors_study  # The session's tiny detectors study, on the tiny DCGANs.


AUTOENCODER = 'autogan_d1'  # The tiny config's autoencoder-GAN generator.
GENERATORS = (*GANS, AUTOENCODER)
# The session's study has the `,real_only` and `,fusion` options.
REAL_ONLY = ('pixelcnn_reals',)
FUSIONS = ('fused_all', 'fused_without_autoencoder', 'fused_without_gan')


def test_generalisation_table_has_every_detector_and_generator(study):
  rows = json.loads((study / detectors.GENERALISATION_JSON).read_text())
  assert [row['detector'] for row in rows] == [
      *sorted([*GENERATORS, 'pooled_dcgans', 'pooled_all']), *REAL_ONLY, *FUSIONS,
      *(f'D of {gan}' for gan in GANS)]
  for row in rows:
    assert list(row['average_precision']) == list(GENERATORS)
    if row['kind'] == 'discriminator':
      continue
    # Each cell is the detector's own report on that generator's split.
    folder = ('real_only' if row['detector'] in REAL_ONLY else
              'fusions' if row['detector'] in FUSIONS else 'classifiers')
    (step_dir,) = list((study / folder / row['detector'] / 'eval').iterdir())
    splits = json.loads((step_dir / 'report.json').read_text())['splits']
    for generator in GENERATORS:
      split = splits[f'fakes_{generator}']
      assert row['average_precision'][generator] == split['threshold_free']['average_precision']
      assert row['fake_recall'][generator] == (
          split['at_threshold']['youden']['generated']['recall'])
  pooled = next(row for row in rows if row['detector'] == 'pooled_dcgans')
  assert sorted(pooled['trained_on']) == sorted(GANS)
  with Image.open(study / detectors.GENERALISATION_PNG) as heatmap:
    assert heatmap.format == 'PNG' and np.asarray(heatmap.convert('L')).std() > 1.0
  table = (study / detectors.GENERALISATION_MD).read_text()
  assert '| pooled_all | sequential_cnn |' in table and 'discriminator' in table


def test_leave_one_family_out_holds_each_family_out_of_its_detector(study):
  """The tiny study's families: the GANs, and the autoencoder; 'pooled_dcgans' and the
  autoencoder's own classifier are the classifiers of every other family."""
  table_json = json.loads((study / detectors.HELD_OUT_JSON).read_text())
  rows = table_json['families']
  want = {'gan': ('autogan_d1', sorted(GANS)), 'autoencoder': ('pooled_dcgans', [AUTOENCODER])}
  assert {row['family']: (row['detector'], sorted(row['generators'])) for row in rows} == want
  for row in rows:
    (step_dir,) = list((study / 'classifiers' / row['detector'] / 'eval').iterdir())
    report = json.loads((step_dir / 'report.json').read_text())
    assert not set(report['trained_on']) & set(row['generators'])  # Held out indeed.
    splits = [report['splits'][f'fakes_{g}'] for g in row['generators']]
    assert row['average_precision'] == pytest.approx(
        np.mean([s['threshold_free']['average_precision'] for s in splits]))
    budget = 'review_budget_0.02'
    assert row['fake_recall_budget'] == pytest.approx(
        np.mean([s['at_threshold'][budget]['generated']['recall'] for s in splits]))
    assert row['seen_real_recall_budget'] == (
        report['splits']['seen_class_reals']['at_threshold'][budget]['real']['recall'])
    # Honest uploads re-encoded, at the same threshold.
    jpeg = report['splits']['seen_reals_jpeg_50']
    assert jpeg['reals'] == 'seen@jpeg_50'
    assert jpeg['support'] == report['splits']['seen_class_reals']['support']
    assert row['seen_reals_jpeg_50_real_recall_budget'] == (
        jpeg['at_threshold'][budget]['real']['recall'])
  table = (study / detectors.HELD_OUT_MD).read_text()
  assert '| seen_reals_jpeg_50 real recall | seen_reals_rescale_0_5 real recall |' in table
  cells = [[cell.strip() for cell in line.strip('|').split('|')]
           for line in table.splitlines()[-4:]]
  assert [row[0] for row in cells] == ['autoencoder', 'gan', '**mean**', '**worst**']
  worst_ap = min(row['average_precision'] for row in rows)
  assert cells[-1][2] == f'{worst_ap:.3f}'
  assert [r['family'] for r in table_json['summary']] == ['mean', 'worst']
  assert table_json['summary'][1]['average_precision'] == worst_ap
  with Image.open(study / detectors.HELD_OUT_PNG) as heatmap:
    assert heatmap.format == 'PNG'


def test_the_fakes_are_stored_once_as_a_pool_named_by_generator(study):
  pool = json.loads((study / 'fake_pool' / 'pool.json').read_text())
  assert sorted(pool['generators']) == sorted(GENERATORS)
  assert pool['generators'][AUTOENCODER]['autoencoder']['depth'] == 1
  test = image_sets.read_split(study / 'fake_pool', 'test')
  # Each GAN's test fakes: evaluation.num_fake_samples of the tiny config; the
  # autoencoder's: its reconstructions of as many seen-class test reals.
  assert {name: int((test.sources == name).sum()) for name in GENERATORS} == {
      name: 128 for name in GENERATORS}
  # Drawing the pool (with the autoencoder's training) is the study's 'data' stage.
  timing = json.loads((study / 'timing.json').read_text())
  assert list(timing) == ['data', 'training', 'evaluation', 'total']
  assert min(timing.values()) > 0


def test_each_generator_split_holds_only_that_generators_fakes(study):
  for name in GENERATORS:
    run_dir = study / 'classifiers' / name
    (step_dir,) = list((run_dir / 'eval').iterdir())
    splits = json.loads((step_dir / 'report.json').read_text())['splits']
    for generator in GENERATORS:
      assert splits[f'fakes_{generator}']['fake_sets'] == [f'gan:{generator}']
    others = [f'gan:{generator}' for generator in GENERATORS if generator != name]
    assert splits['other_gan_fakes']['fake_sets'] == others
  (step_dir,) = list((study / 'classifiers' / 'pooled_dcgans' / 'eval').iterdir())
  splits = json.loads((step_dir / 'report.json').read_text())['splits']
  # Pooled DCGANs: 'own' holds both GANs' test fakes; the autoencoder's are unseen.
  assert splits['own_fakes_vs_reals']['support'] == {'real': 320, 'generated': 256}
  assert splits['other_gan_fakes']['fake_sets'] == [f'gan:{AUTOENCODER}']
  (step_dir,) = list((study / 'classifiers' / 'pooled_all' / 'eval').iterdir())
  assert 'other_gan_fakes' not in json.loads((step_dir / 'report.json').read_text())['splits']


@pytest.mark.parametrize('architecture', sorted(CLASSIFIERS))
@pytest.mark.parametrize('shape', [(2, 28, 28, 1), (2, 64, 64, 3)])
@pytest.mark.parametrize('outputs', [1, 2])
def test_classifiers_give_one_or_two_logits_per_image_at_any_size(architecture, shape, outputs):
  widths = {'alexnet': 5, 'sequential_cnn': 3, 'patch_cnn': 3, 'resnet18': 4, 'resnet50': 4}
  options = ({} if CLASSIFIERS[architecture].fixed_widths
             else {'features': (4,) * widths[architecture]})
  model = CLASSIFIERS[architecture].builder(hidden=8, dropout_rate=0.5, outputs=outputs,
                                            **options)
  images = jnp.zeros(shape)
  logits = jax.eval_shape(
      lambda key: model.apply(model.init(key, images, train=False), images, train=False),
      jax.random.PRNGKey(0))
  assert logits.shape == (shape[0], outputs)


def test_two_way_cross_entropy_is_binary_cross_entropy_on_the_logit_difference():
  logits = jnp.asarray([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1]])
  labels = jnp.asarray([1, 0, 1])
  real = classifier_steps.real_logit(logits)
  np.testing.assert_allclose(real, logits[:, 1] - logits[:, 0])
  np.testing.assert_allclose(jax.nn.sigmoid(real), jax.nn.softmax(logits)[:, 1], rtol=1e-6)
  np.testing.assert_allclose(classifier_steps.classification_loss(logits, labels),
                             classifier_steps.classification_loss(real[:, None], labels),
                             rtol=1e-6)


def test_the_head_penalty_is_l2_on_the_hidden_kernel_only():
  params = {'head_hidden': {'kernel': jnp.full((3, 2), 2.0), 'bias': jnp.ones(2)},
            'head': {'kernel': jnp.ones((2, 1))}}
  assert float(classifier_steps.head_l2_penalty(params, 0.01)) == pytest.approx(0.01 * 6 * 4)
  assert float(classifier_steps.head_l2_penalty({'head': params['head']}, 0.01)) == 0.0


@pytest.mark.parametrize('architecture,backbone_weights', [
    ('resnet18', 11_176_512), ('resnet50', 23_508_032),  # torchvision's, without fc.
    # Keras Applications' trainable weights with include_top=False.
    ('mobilenet_v2', 2_223_872), ('mobilenet_v3_large', 2_971_952),
    ('efficientnet_b0', 4_007_548)])
def test_backbones_have_their_references_parameter_counts(architecture, backbone_weights):
  model = CLASSIFIERS[architecture].builder()
  variables = jax.eval_shape(lambda key: model.init(key, jnp.zeros((1, 224, 224, 3)),
                                                    train=False), jax.random.PRNGKey(0))
  params = variables['params']
  head = sum(leaf.size for leaf in jax.tree.leaves(params['head']))
  assert sum(leaf.size for leaf in jax.tree.leaves(params)) - head == backbone_weights


def image_classifier_job(config, name, validation=None, mesh=None):
  """The dedicated study's classifier of raw images and its loop job, as it trains them."""
  mesh = mesh or sharding.build_mesh()
  classifier = classifier_trainer.classifier_of(config.classifier)
  job = classifier_trainer.classifier_job(
      name, config.classifier, classifier, (28, 28, 1), frozen={},
      skip_nonfinite=config.skip_nonfinite_updates, metadata={}, mesh=mesh)
  if validation is not None:
    job.on_epoch_end = classifier_trainer.plateau_schedule(
        config.classifier, classifier, validation, mesh, config.evaluation.batch_size)
  return job


def test_frozen_modules_never_change_and_the_rest_trains():
  config = detectors_fmnist.get_config('tiny')
  config.classifier.architecture = 'resnet18'
  config.classifier.features = (4, 8, 8, 8)
  config.classifier.frozen = ('stem', 'stage1')
  job = image_classifier_job(config, 'frozen')
  state = jax.jit(job.init)(jax.random.PRNGKey(0))
  before = state.params
  batch = {'image': jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)),
                                jnp.uint8),
           'label': jnp.asarray([0, 1] * 4)}
  step = jax.jit(job.train_step)
  for _ in range(3):
    state, _ = step(state, batch)
  for name in before:
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[name]),
                                                    jax.tree.leaves(state.params[name])))
    assert same == name.startswith(('stem', 'stage1')), name
  config.classifier.frozen = ('stage9',)
  with pytest.raises(ValueError, match=r"'classifier.frozen' has \['stage9'\]"):
    jax.jit(image_classifier_job(config, 'bad').init)(jax.random.PRNGKey(0))


def check(config):
  studies.validate(config, num_devices=8)


@pytest.mark.parametrize('variant', ['full', 'quick', 'tiny', 'full,augment', 'tiny,augment',
                                     'quick,zoo,patch', 'tiny,patch', 'quick,zoo,simulated',
                                     'tiny,simulated', 'quick,zoo,hygiene'])
def test_shipped_detector_configs_are_valid(variant):
  check(detectors_fmnist.get_config(variant))


@pytest.mark.parametrize('variant', ['full', 'resnet50', 'tiny'])
def test_shipped_folder_detector_configs_are_valid(variant):
  config = detectors_folder.get_config(variant)
  config.data.folder = '/data/faces'
  check(config)


def test_detector_config_mistakes_are_named():
  config = detectors_fmnist.get_config('tiny')
  config.train_sets.mixed = ('dcgan_tf', 'stylegan')
  with pytest.raises(ConfigError, match=r"'train_sets.mixed'.*unknown: \['stylegan'\]"):
    check(config)
  config = detectors_fmnist.get_config('tiny')
  del config.evals['fakes_dcgan_tf']
  with pytest.raises(ConfigError, match=r"'evals' lacks \['fakes_dcgan_tf'\]"):
    check(config)
  config = detectors_fmnist.get_config('tiny,augment')
  config.classifier.augmentation.jpeg_prob = 1.5
  with pytest.raises(ConfigError, match=r"'classifier.augmentation.jpeg_prob' must be in \[0, 1\]"):
    check(config)
  config = detectors_fmnist.get_config('tiny')
  config.classifier.batch_size = 36
  with pytest.raises(ConfigError, match=r"'classifier.batch_size' \(36\) must be divisible.*\(8\)"):
    check(config)
  config = detectors_fmnist.get_config('tiny')
  config.classifier.hidden = 0  # The Sequential CNN needs its hidden layer; a ResNet does not.
  with pytest.raises(ConfigError, match="'classifier.hidden' must be positive"):
    check(config)
  config.classifier.architecture = 'resnet18'
  check(config)
  config.classifier.hidden = -1
  with pytest.raises(ConfigError, match="'classifier.hidden' must be >= 0"):
    check(config)
  config = detectors_fmnist.get_config('tiny')
  config.classifier.update(architecture='mobilenet_v2', features=(8, 16), pooling='average')
  with pytest.raises(ConfigError, match="'classifier.features' must be empty for mobilenet_v2"):
    check(config)
  config = detectors_fmnist.get_config('tiny')
  config.classifier.pooling = 'average'  # The Sequential CNN's head is its study's.
  with pytest.raises(ConfigError, match="'classifier.pooling' must be 'flatten' for sequential_cnn"):
    check(config)
  config = detectors_fmnist.get_config('tiny')
  config.classifier.loss = 'hinge'
  with pytest.raises(ConfigError, match="'classifier.loss' is 'hinge'"):
    check(config)
  config = detectors_fmnist.get_config('tiny')
  config.classifier.augmentation.resize_scale = 0.5
  with pytest.raises(ConfigError, match="'classifier.augmentation.resize_scale' must be >= 1"):
    check(config)
  config = detectors_fmnist.get_config('tiny')
  config.autoencoder_generators.dcgan_tf = config.autoencoder_generators.autogan_d1
  with pytest.raises(ConfigError, match=r"shares names \['dcgan_tf'\]"):
    check(config)
  config = detectors_fmnist.get_config('tiny')
  config.classifier.architecture = 'resnet1000'
  with pytest.raises(ConfigError, match="'classifier.architecture' is 'resnet1000'"):
    check(config)


def tiny_classifier(**classifier_overrides):
  config = detectors_fmnist.get_config('tiny')
  config.classifier.update(classifier_overrides)
  rng = np.random.default_rng(0)
  train = {'image': rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8),
           'label': rng.integers(0, 2, 64).astype(np.int32)}
  validation = classifier_trainer.ValidationSet(
      images=rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8),
      is_fake=np.repeat([0, 1], 20).astype(np.int32))
  mesh = sharding.build_mesh()
  job = image_classifier_job(config, 'tiny', validation, mesh)
  settings = loop.LoopSettings.from_config(config, batch_size=16, num_epochs=3)
  return job, settings, train, mesh


def test_plateaus_decay_the_learning_rate_then_stop_training():
  job, _, _, mesh = tiny_classifier(lr_decay_factor=0.5, lr_decay_patience_epochs=1,
                                      early_stopping_patience_epochs=2)
  state = jax.jit(job.init, out_shardings=sharding.replicated(mesh))(jax.random.PRNGKey(0))
  state = state.replace(schedule={**state.schedule, 'best_ap': jnp.float32(2.0)})  # Unbeatable.
  state, metrics, stop = job.on_epoch_end(state, 1)
  assert 0.0 <= metrics['validation/average_precision'] <= 1.0
  assert float(state.schedule['lr_scale']) == 0.5 and not stop
  state, metrics, stop = job.on_epoch_end(state, 2)
  assert float(state.schedule['lr_scale']) == 0.25 and stop
  assert metrics['learning_rate'] == pytest.approx(0.25 * 1e-3)
  assert classifier_trainer.stopped_early(state)


def test_an_early_stop_is_saved_and_a_resumed_run_does_not_train_further(tmp_path):
  job, settings, train, mesh = tiny_classifier()
  validate = job.on_epoch_end

  def stop_after_first_epoch(state, epoch):
    state, metrics, _ = validate(state, epoch)
    schedule = {**state.schedule, 'stopped': jnp.bool_(True)}
    return state.replace(schedule=jax.device_put(schedule, sharding.replicated(mesh))), metrics, True

  job.on_epoch_end = stop_after_first_epoch
  result = loop.train(job, settings, train, RunDir(tmp_path / 'run'), mesh)
  assert result.num_steps == 4  # One epoch of 64 examples at batch 16, of 3.
  assert sorted(int(p.name) for p in (tmp_path / 'run' / 'checkpoints').iterdir()
                if p.name.isdigit())[-1] == 4
  again = loop.train(job, settings, train, RunDir(tmp_path / 'run'), mesh)
  assert (again.resumed_from_step, again.num_steps) == (4, 4)
  events = event_accumulator.EventAccumulator(str(tmp_path / 'run' / 'tensorboard'),
                                              size_guidance={event_accumulator.TENSORS: 0})
  events.Reload()
  tags = set(events.Tags()['tensors'])
  assert {'validation/average_precision', 'validation/accuracy', 'validation/fake_recall',
          'validation/real_recall', 'validation/fake_f1', 'learning_rate', 'loss',
          'accuracy'} <= tags


def test_a_frozen_backbone_leaves_only_the_head_training():
  config = detectors_fmnist.get_config('tiny')
  config.classifier.update(architecture='resnet18', features=(4, 8, 8, 8), hidden=8,
                           pooling='average', frozen=('backbone',))
  job = image_classifier_job(config, 'frozen')
  state = jax.jit(job.init)(jax.random.PRNGKey(0))
  batch = {'image': jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)),
                                jnp.uint8), 'label': jnp.asarray([0, 1] * 4)}
  trained, _ = jax.jit(job.train_step)(state, batch)
  changed = {name for name in state.params if not all(
      np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params[name]),
                                           jax.tree.leaves(trained.params[name])))}
  assert changed == {'head', 'head_hidden'}


def test_weight_decay_makes_the_optimiser_adamw():
  config = detectors_fmnist.get_config('tiny').classifier
  config.optimizer.weight_decay = 0.1
  tx = classifier_trainer.classifier_optimizer(config)
  params = {'w': jnp.full(3, 2.0)}
  updates, _ = tx.update({'w': jnp.zeros(3)}, tx.init(params), params)
  # No gradient: only the decoupled decay, -learning_rate * weight_decay * w.
  np.testing.assert_allclose(updates['w'], -1e-3 * 0.1 * 2.0, rtol=1e-6)
  config.optimizer.weight_decay = 0.0
  tx = classifier_trainer.classifier_optimizer(config)
  updates, _ = tx.update({'w': jnp.zeros(3)}, tx.init(params), params)
  np.testing.assert_array_equal(updates['w'], 0.0)


def test_standalone_evaluation_reproduces_every_report_and_the_table(study, tmp_path):
  """Without the real-only detectors and fusions, whose restored scores tests of their
  own check (test_real_only.py, test_fusion.py), and which would double its time."""
  copy = tmp_path / 'copy'
  rerun_evaluation(study, copy, detectors.GENERALISATION_MD, detectors.GENERALISATION_JSON,
                   detectors.GENERALISATION_PNG, drop=('real_only', 'fusions'))
  config = json.loads((study / 'config.json').read_text())
  dropped = {*config['real_only'], *config['fusions']}
  assert dropped  # The study has both kinds, and the copy none.
  rows = json.loads((study / 'generalisation.json').read_text())
  kept = [row for row in rows if row['detector'] not in dropped]
  assert json.loads((copy / 'generalisation.json').read_text()) == kept
  lines = [line for line in (study / 'generalisation.md').read_text().splitlines()
           if not any(line.startswith(f'| {name} |') for name in dropped)]
  assert (copy / 'generalisation.md').read_text().splitlines() == lines
  for name in (*GENERATORS, 'pooled_dcgans', 'pooled_all'):
    (step_dir,) = list((study / 'classifiers' / name / 'eval').iterdir())
    relative = step_dir.relative_to(study) / 'report.json'
    assert (copy / relative).read_text() == (study / relative).read_text()


def test_classifier_replicas_equal_single_seed_runs_through_decay_and_early_stops(tmp_path):
  """Replica k of a K-seed classifier run, whose validation decays its learning rate and
  stops it early on its own, equals the single-seed run of seed k; a replica that stopped
  stays frozen while another trains on."""
  job, settings, train, mesh = tiny_classifier(lr_decay_factor=0.5, lr_decay_patience_epochs=1,
                                               early_stopping_patience_epochs=2)
  seeds = (0, 1, 2)
  settings = dataclasses.replace(settings, num_epochs=8, seeds=seeds)
  stacked = loop.train(job, settings, train, RunDir(tmp_path / 'replicas'), mesh).state
  ends = []
  for k, seed in enumerate(seeds):
    single = loop.train(job, dataclasses.replace(settings, seed=seed, seeds=()), train,
                        RunDir(tmp_path / f'seed_{seed}'), mesh)
    ends.append(single.num_steps)
    for got, want in zip(jax.tree.leaves(replicas.replica(jax.device_get(stacked), k)),
                         jax.tree.leaves(jax.device_get(single.state)), strict=True):
      np.testing.assert_allclose(got, want, atol=1e-5)
  # The case this test is for: replicas stopped at different steps, one before the end.
  assert len(set(ends)) > 1 and min(ends) < 32, ends


def test_simulated_fakes_are_autoencoders_of_four_upsamplers_and_their_own_train_set():
  config = detectors_fmnist.get_config('tiny,simulated')
  autoencoders = config.autoencoder_generators
  assert sorted(ae.upsampler for ae in autoencoders.values()) == [
      'bilinear', 'nearest', 'pixel_shuffle', 'transposed']
  assert sorted(config.train_sets.simulated) == sorted(autoencoders)
  assert not set(config.train_sets.simulated) & set(config.gans)  # No generator's fakes.
  # The autoencoder family holds all four; the GANs are held out of the simulated set.
  assert sorted(config.families.autoencoder) == sorted(autoencoders)
  assert config_lib.held_out_sets(config) == {'gan': 'simulated', 'autoencoder': 'pooled_dcgans'}
  zoo = detectors_fmnist.get_config('quick,zoo,simulated')
  assert sorted(zoo.train_sets.without_autoencoder) == sorted(
      (*zoo.gans, *zoo.generators))
  assert set(autoencoders) <= set(zoo.train_sets.without_dcgan)


def test_the_marketplace_ranking_judges_each_detector_on_families_it_never_saw(study, tmp_path):
  candidates = {c.detector: c for c in marketplace.study_candidates(study, ['autogan_d1'])}
  assert sorted(candidates) == sorted([marketplace.LEAVE_ONE_OUT, 'autogan_d1', *REAL_ONLY,
                                       marketplace.FUSIONS,
                                       *(f'D of {gan}' for gan in GANS)])
  families = lambda name: [row['family'] for row in candidates[name].rows_by_seed[None]]
  assert sorted(families(marketplace.LEAVE_ONE_OUT)) == ['autoencoder', 'gan']
  assert families('autogan_d1') == ['gan'] and families(f'D of {GANS[0]}') == ['autoencoder']
  # Each fusion on the families none of it saw: each held-out one once, 'fused_all' never.
  fused = candidates[marketplace.FUSIONS].rows_by_seed[None]
  assert sorted((row['detector'], row['family']) for row in fused) == [
      ('fused_without_autoencoder', 'autoencoder'), ('fused_without_gan', 'gan')]
  held_out = json.loads((study / detectors.HELD_OUT_JSON).read_text())
  summary = marketplace.summary(candidates[marketplace.LEAVE_ONE_OUT])
  assert summary['average_precision_mean'] == pytest.approx(
      held_out['summary'][0]['average_precision'])
  assert summary['fake_recall_budget_worst'] == pytest.approx(
      held_out['summary'][1]['fake_recall_budget'])
  # Flag rates are 1 - real recall at the budget; the worst is the most flagged.
  seen = [1 - row['seen_real_recall_budget'] for row in held_out['families']]
  assert summary['seen_flagged_worst'] == pytest.approx(max(seen))
  assert summary['jpeg_50_flagged_mean'] == pytest.approx(np.mean(
      [1 - row['seen_reals_jpeg_50_real_recall_budget'] for row in held_out['families']]))
  out = tmp_path / 'ranking.md'
  markdown = rank_detectors.main([str(study), '--sets=autogan_d1', f'--out={out}'])
  assert out.read_text() == markdown
  table = [line.split(' | ')[1] for line in markdown.splitlines()[2:2 + len(candidates)]]
  caught = {s['detector']: s['fake_recall_budget_mean']
            for s in map(marketplace.summary, candidates.values())}
  assert [caught[name] for name in table] == sorted(caught.values(), reverse=True)


def test_ranking_a_folder_without_studies_is_a_clear_error(tmp_path):
  with pytest.raises(errors.UserError, match='config.json does not exist'):
    rank_detectors.main([str(tmp_path)])
