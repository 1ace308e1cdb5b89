"""Dedicated classifiers on each generator's fakes and pooled, tested on every generator."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from configs import detectors_fmnist
from fakejax import detectors
from fakejax.config import ConfigError, validate_config
from fakejax.models import GAN_ARCHITECTURES
from fakejax.models.classifiers import CLASSIFIER_ARCHITECTURES
from tests.conftest import GANS, REPO_ROOT, TWO_DEVICES


@pytest.fixture(scope='module')
def study(finished_run, tfds_data_dir, tmp_path_factory):
  gan_workdir, _ = finished_run  # The tiny DCGAN study's generators and discriminators.
  workdir = tmp_path_factory.mktemp('detectors')
  command = [sys.executable, '-m', 'fakejax.main', '--config=configs/detectors_fmnist.py:tiny',
             f'--workdir={workdir}', f'--config.data.data_dir={tfds_data_dir}',
             '--config.data.allow_download=False', f'--config.gan_workdir={gan_workdir}']
  result = subprocess.run(command, cwd=REPO_ROOT, env=TWO_DEVICES, capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-5000:]
  return workdir


def test_generalisation_table_has_every_detector_and_generator(study):
  rows = json.loads((study / detectors.GENERALISATION_JSON).read_text())
  assert [row['detector'] for row in rows] == [
      *sorted(GANS), 'pooled', *(f'D of {gan}' for gan in GANS)]
  for row in rows:
    assert set(row['average_precision']) == set(GANS)
    for gan in GANS:
      assert 0.0 <= row['average_precision'][gan] <= 1.0
      assert 0.0 <= row['fake_recall'][gan] <= 1.0
  pooled = next(row for row in rows if row['detector'] == 'pooled')
  assert sorted(pooled['trained_on']) == sorted(GANS)
  assert (study / detectors.GENERALISATION_PNG).stat().st_size > 0
  table = (study / detectors.GENERALISATION_MD).read_text()
  assert '| pooled | sequential_cnn |' in table and 'discriminator' in table


def test_each_generator_split_holds_only_that_generators_fakes(study):
  for name in GANS:
    run_dir = study / 'classifiers' / name
    (step_dir,) = list((run_dir / 'eval').iterdir())
    splits = json.loads((step_dir / 'report.json').read_text())['splits']
    for gan in GANS:
      assert splits[f'fakes_{gan}']['fake_sets'] == [f'gan:{gan}']
    (other,) = [gan for gan in GANS if gan != name]
    assert splits['other_gan_fakes']['fake_sets'] == [f'gan:{other}']
  (step_dir,) = list((study / 'classifiers' / 'pooled' / 'eval').iterdir())
  splits = json.loads((step_dir / 'report.json').read_text())['splits']
  # Pooled: 'own' holds both generators' test fakes; no generator is left unseen.
  assert splits['own_fakes_vs_reals']['support'] == {'real': 320, 'generated': 256}
  assert 'other_gan_fakes' not in splits


@pytest.mark.parametrize('architecture', sorted(CLASSIFIER_ARCHITECTURES))
@pytest.mark.parametrize('shape', [(2, 28, 28, 1), (2, 64, 64, 3)])
def test_classifiers_give_one_logit_per_image_at_any_size(architecture, shape):
  num_widths = {'alexnet': 5, 'sequential_cnn': 3}[architecture]
  model = CLASSIFIER_ARCHITECTURES[architecture](features=(4,) * num_widths, hidden=8,
                                                 dropout_rate=0.5)
  images = jnp.zeros(shape)
  variables = model.init(jax.random.PRNGKey(0), images, train=False)
  assert model.apply(variables, images, train=False).shape == (shape[0],)


def check(config):
  validate_config(config, num_devices=8, architectures=GAN_ARCHITECTURES)


@pytest.mark.parametrize('variant', ['full', 'quick', 'tiny', 'full,augment', 'tiny,augment'])
def test_shipped_detector_configs_are_valid(variant):
  check(detectors_fmnist.get_config(variant))


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
  config.classifier.architecture = 'resnet1000'
  with pytest.raises(ConfigError, match="'classifier.architecture' is 'resnet1000'"):
    check(config)
