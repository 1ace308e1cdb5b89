"""The autoencoder-GAN study end to end, its classifier step, folder data and config checks."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tensorboard.backend.event_processing import event_accumulator

from configs import autogan_fmnist, autogan_folder
from fakejax import studies
from fakejax.config import ConfigError
from fakejax.data import folders
from fakejax.evaluation import restore
from fakejax.models.autoencoder import AutoEncoder
from fakejax.studies import autogan, common
from fakejax.models.classifiers import AlexNetClassifier
from fakejax.train import classifier_steps, classifier_trainer
from fakejax.workdir import Workdir
from tests.conftest import REPO_ROOT, TWO_DEVICES, make_face_folder, rerun_evaluation, write_image

FMNIST_SPLITS = {'own_fakes_vs_reals', 'anomaly_class_reals', 'seen_class_reals',
                 'other_gan_fakes'}


def run_autogan(config_file, workdir, *overrides) -> subprocess.CompletedProcess:
  command = [sys.executable, '-m', 'fakejax.main', f'--config=configs/{config_file}:tiny',
             f'--workdir={workdir}', '--config.data.allow_download=False', *overrides]
  result = subprocess.run(command, cwd=REPO_ROOT, env=TWO_DEVICES, capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-5000:]
  return result


def tensorboard_tags(logdir) -> set[str]:
  events = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={event_accumulator.TENSORS: 0})
  events.Reload()
  return set(events.Tags()['tensors'])


@pytest.fixture
def fmnist_study(autogan_study):
  return autogan_study  # The session's tiny autoencoder-GAN study, on the tiny DCGANs.


def test_fmnist_study_writes_the_input_depth_split_table(fmnist_study):
  rows = json.loads((fmnist_study / autogan.COMPARISON_JSON).read_text())
  config = restore.workdir_config(Workdir(fmnist_study))
  names = [variant.name for variant in autogan.variants(config)]
  # The image, and the residual under each of the 2 autoencoders.
  assert names == ['image', 'residual@depth1', 'residual@depth4']
  assert len(rows) == len(names) * len(FMNIST_SPLITS)
  assert {(row['input'], row['autoencoder_depth']) for row in rows} == {
      ('image', None), ('residual', 1), ('residual', 4)}
  by_name = {(variant.input_kind, variant.autoencoder and
               config.autoencoders[variant.autoencoder].depth): variant.name
              for variant in autogan.variants(config)}
  for row in rows:  # Each row is the classifier's own report on that split.
    name = by_name[(row['input'], row['autoencoder_depth'])]
    (step_dir,) = list((fmnist_study / 'classifiers' / name / 'eval').iterdir())
    split = json.loads((step_dir / 'report.json').read_text())['splits'][row['split']]
    assert row['average_precision'] == split['threshold_free']['average_precision']
    assert row['accuracy'] == split['at_threshold']['youden']['accuracy']
  table = (fmnist_study / autogan.COMPARISON_MD).read_text()
  assert '| residual | 4 | other_gan_fakes |' in table
  assert 'reconstruction error' in table


def test_fmnist_classifiers_are_tested_on_a_generator_they_never_saw(fmnist_study):
  for name in ('image', 'residual@depth4'):
    run_dir = fmnist_study / 'classifiers' / name
    (step,) = [int(p.name) for p in (run_dir / 'eval').iterdir()]
    report = json.loads((run_dir / 'eval' / str(step) / 'report.json').read_text())
    assert report['trained_on'] == ['dcgan_tf']
    splits = report['splits']
    assert set(splits) == FMNIST_SPLITS
    assert splits['other_gan_fakes']['fake_sets'] == ['gan:dcgan_radford']
    assert splits['own_fakes_vs_reals']['support'] == {'real': 320, 'generated': 128}
    assert {'loss', 'accuracy', 'eval/other_gan_fakes/average_precision'} <= tensorboard_tags(
        run_dir / 'tensorboard')


def test_standalone_evaluation_reproduces_the_comparison(fmnist_study, tmp_path):
  copy = tmp_path / 'copy'
  rerun_evaluation(fmnist_study, copy, autogan.COMPARISON_MD, autogan.COMPARISON_JSON)
  for name in (autogan.COMPARISON_JSON, autogan.COMPARISON_MD,
               'classifiers/residual@depth4/eval'):
    path = fmnist_study / name
    files = sorted(path.rglob('report.json')) if path.is_dir() else [path]
    for file in files:
      assert (copy / file.relative_to(fmnist_study)).read_text() == file.read_text()


def test_autoencoders_train_with_reconstruction_grids_and_checkpoints(fmnist_study):
  for name in ('depth1', 'depth4'):
    run_dir = fmnist_study / 'autoencoders' / name
    assert any(p.name.isdigit() for p in (run_dir / 'checkpoints').iterdir())
    assert {'reconstruction_loss', 'adversarial_loss', 'd_loss',
            'reconstructions'} <= tensorboard_tags(run_dir / 'tensorboard')
  timing = json.loads((fmnist_study / 'timing.json').read_text())
  assert list(timing) == ['data', 'training', 'evaluation', 'total']


def test_folder_study_trains_and_separates_an_easy_real_fake_folder(tmp_path):
  root = tmp_path / 'faces'
  make_face_folder(root)
  workdir = tmp_path / 'run'
  result = run_autogan('autogan_folder.py', workdir, f'--config.data.folder={root}',
                       f'--config.data.data_dir={tmp_path / "tfds"}',
                       "--config.classifier.inputs=('image',)",  # Residuals: the study above.
                       '--config.classifier.num_epochs=5',
                       '--config.classifier.optimizer.learning_rate=0.001')
  assert 'broken.png' in result.stderr  # Reported by name, and skipped.
  rows = json.loads((workdir / autogan.COMPARISON_JSON).read_text())
  assert {(row['input'], row['autoencoder_depth']) for row in rows} == {('image', None)}
  image_row = next(row for row in rows
                   if row['input'] == 'image' and row['split'] == 'test_fakes_vs_reals')
  assert image_row['average_precision'] > 0.9  # Brightness alone separates the classes.
  report_dir = workdir / 'classifiers' / 'image' / 'eval'
  (step,) = list(report_dir.iterdir())
  report = json.loads((step / 'report.json').read_text())
  # 80 per class, 20% held out for test; the corrupt file is not counted.
  assert report['splits']['test_fakes_vs_reals']['support'] == {'real': 16, 'generated': 16}


def test_real_fake_folder_layouts(tmp_path):
  make_face_folder(tmp_path / 'one', num_per_class=10)
  split = folders.load_real_fake_folder(tmp_path / 'one', (64, 64, 3), test_fraction=0.2).parts
  assert [len(split[s].reals) for s in ('train', 'test')] == [8, 2]
  assert [len(split[s].fakes) for s in ('train', 'test')] == [8, 2]
  again = folders.load_real_fake_folder(tmp_path / 'one', (64, 64, 3), test_fraction=0.2).parts
  np.testing.assert_array_equal(split['test'].reals, again['test'].reals)  # Deterministic.
  for part, count in (('train', 3), ('test', 2)):
    for label in folders.REAL_FAKE:
      for index in range(count):
        write_image(tmp_path / 'two' / part / label / f'{index}.png',
                    np.zeros((32, 32, 3), np.uint8))
  split = folders.load_real_fake_folder(tmp_path / 'two', (16, 16, 1)).parts
  assert split['train'].reals.shape == (3, 16, 16, 1)
  assert split['test'].fakes.shape == (2, 16, 16, 1)


@pytest.mark.parametrize('kind', ['image', 'residual_spectrum'])
def test_classifier_step_learns_and_leaves_the_autoencoder_frozen(kind):
  images = np.concatenate([np.full((8, 28, 28, 1), 40, np.uint8),
                           np.full((8, 28, 28, 1), 200, np.uint8)])
  images[8:, ::2] = 0  # Fakes: striped and bright.
  batch = {'image': jnp.asarray(images), 'label': jnp.asarray([1] * 8 + [0] * 8)}
  model = AlexNetClassifier(features=(8, 8, 8, 8, 8), hidden=16, dropout_rate=0.0)
  autoencoder = AutoEncoder(1, base_features=4, latent_features=4)
  frozen = {'autoencoder': autoencoder.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))[
      'params']}
  prepare = classifier_trainer.make_prepare(kind, autoencoder)
  tx = optax.adam(3e-3)
  state = classifier_steps.init_state(model, tx, prepare, frozen, (28, 28, 1),
                                      jax.random.PRNGKey(1))
  step = jax.jit(classifier_steps.make_train_step(model, tx, prepare))
  losses = []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
  assert losses[-1] < 0.5 * losses[0]
  jax.tree.map(np.testing.assert_array_equal, state.frozen, frozen)
  p_real = classifier_steps.make_score(model, prepare)(classifier_steps.variables(state),
                                                       batch['image'])
  assert float(p_real[:8].min()) > float(p_real[8:].max())


def check(config):
  studies.validate(config, num_devices=8)


@pytest.mark.parametrize('variant', ['full', 'quick', 'tiny'])
def test_shipped_autogan_configs_are_valid(variant):
  check(autogan_fmnist.get_config(variant))
  if variant != 'quick':
    config = autogan_folder.get_config(variant)
    config.data.folder = '/data/faces'
    check(config)


@pytest.mark.parametrize('change,message', [
    (lambda c: setattr(c.classifier, 'inputs', ('image', 'wavelets')),
     r"'classifier.inputs'.*unknown: \['wavelets'\]"),
    (lambda c: setattr(c.classifier, 'train_generators', ('stylegan',)),
     r"'classifier.train_generators'.*unknown: \['stylegan'\]"),
    (lambda c: setattr(c.autoencoders.depth4, 'reconstruction_loss', 'l3'),
     r"'autoencoders.depth4.reconstruction_loss' is 'l3'"),
    (lambda c: setattr(c.autoencoders.depth1, 'discriminator', 'vgg'),
     r"'autoencoders.depth1.discriminator' is 'vgg'"),
    (lambda c: setattr(c, 'experiment', 'autogna'), r"'experiment' is 'autogna'"),
])
def test_autogan_config_mistakes_are_named(change, message):
  config = autogan_fmnist.get_config('tiny')
  change(config)
  with pytest.raises(ConfigError, match=message):
    check(config)


def test_folder_config_without_a_folder_says_how_to_set_it():
  with pytest.raises(ConfigError, match=r"'data.folder' is empty.*--config.data.folder"):
    check(autogan_folder.get_config('tiny'))


def test_the_comparison_of_several_seeds_gives_intervals_and_ranks_by_their_means():
  config = autogan_fmnist.get_config('tiny')
  row = lambda input_kind, ap: {'input': input_kind, 'autoencoder_depth': None, 'split': 'own',
                                'average_precision': ap, 'accuracy': 0.5, 'fake_recall': None,
                                'real_recall': 0.5, 'threshold': 0.5}
  rows = common.across_seeds({0: [row('image', 0.90), row('spectrum', 0.70)],
                              1: [row('image', 0.70), row('spectrum', 0.86)],
                              2: [row('image', 0.62), row('spectrum', 0.84)]})
  assert rows[0]['seeds'] == [0, 1, 2] and rows[0]['average_precision']['values'] == [
      0.90, 0.70, 0.62]
  assert rows[0]['accuracy'] == 0.5  # All seeds agree: a number.
  markdown = autogan.comparison_markdown(rows, {}, config)
  assert 'Seeds [0, 1, 2]' in markdown and '| image | — | own | 0.740 ± 0.358 |' in markdown
  assert '- own: spectrum, AP 0.800 ± 0.217' in markdown  # Mean 0.80 beats 0.74.
