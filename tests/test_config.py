"""Config validation: every mistake is an error naming the key."""

import subprocess
import sys

import ml_collections
import pytest

from configs import dcgan_fmnist
from fakejax import studies
from fakejax.config import ConfigError
from tests.conftest import REPO_ROOT


def check(config, num_devices=8):
  studies.validate(config, num_devices=num_devices)


@pytest.mark.parametrize('variant', ['full', 'quick', 'tiny'])
def test_shipped_variants_are_valid(variant):
  check(dcgan_fmnist.get_config(variant))


def test_mistyped_key_is_named_with_a_suggestion():
  config = dcgan_fmnist.get_config('tiny')
  config.btach_size = 64
  with pytest.raises(ConfigError, match=r"Unknown config key 'btach_size'.*'batch_size'"):
    check(config)


def test_mistyped_nested_key_is_named_with_its_path():
  config = dcgan_fmnist.get_config('tiny')
  config.gans.dcgan_tf.optimizer.learnig_rate = 1e-3
  with pytest.raises(ConfigError, match=r"'gans.dcgan_tf.optimizer.learnig_rate'.*learning_rate"):
    check(config)


def test_wrong_type_in_a_config_file_is_named():
  values = dcgan_fmnist.get_config('tiny').to_dict()
  values['data']['validation_fraction'] = 'ten percent'  # As a hand-written config might.
  config = ml_collections.ConfigDict(values)
  with pytest.raises(ConfigError, match="'data.validation_fraction' must be of type float"):
    check(config)


def test_class_index_out_of_range_is_named():
  config = dcgan_fmnist.get_config('tiny')
  config.data.anomaly_classes = (5, 7, 10)
  with pytest.raises(ConfigError, match=r"'data.anomaly_classes'.*out of range.*\[10\]"):
    check(config)


def test_batch_that_does_not_split_over_devices_is_named():
  config = dcgan_fmnist.get_config('tiny')
  config.batch_size = 36
  with pytest.raises(ConfigError, match=r"'batch_size' \(36\) must be divisible.*\(8\)"):
    check(config)


def test_unknown_architecture_is_named():
  config = dcgan_fmnist.get_config('tiny')
  config.gans.dcgan_tf.architecture = 'stylegan9'
  with pytest.raises(ConfigError, match=r"'gans.dcgan_tf.architecture' is 'stylegan9'"):
    check(config)


def test_unknown_compute_dtype_is_named():
  config = dcgan_fmnist.get_config('tiny')
  config.gans.dcgan_radford.compute_dtype = 'float16'
  with pytest.raises(ConfigError, match=r"'gans.dcgan_radford.compute_dtype' is 'float16'"):
    check(config)


def test_gans_option_keeps_only_the_named_architectures():
  config = dcgan_fmnist.get_config('tiny,gans=dcgan_tf')
  assert list(config.gans.keys()) == ['dcgan_tf']
  assert 'other_gan_fakes' not in config.evals
  check(config)
  with pytest.raises(ValueError, match=r"Unknown gans \['stylegan'\]"):
    dcgan_fmnist.get_config('tiny,gans=dcgan_tf+stylegan')


def test_generators_option_adds_other_families_in_the_variant_asked():
  config = dcgan_fmnist.get_config('tiny,generators=vae+ddpm')
  assert sorted(config.generators.keys()) == ['ddpm', 'vae']
  tiny_ddpm = dcgan_fmnist.ddpm('tiny')
  assert config.generators.ddpm.options.sampling_steps == tiny_ddpm.options.sampling_steps
  check(config)
  with pytest.raises(ValueError, match=r"Unknown generators \['gpt'\]"):
    dcgan_fmnist.get_config('tiny,generators=vae+gpt')


@pytest.mark.parametrize('key,value,message', [
    ('generators.ddpm.options.noise_schedule', 'sqrt', "use one of \\['cosine', 'linear'\\]"),
    ('generators.ddpm.features', (8, 12, 16), 'multiples of 8'),
    ('generators.vae.ema_decay', 1.0, r'in \[0, 1\)'),
    ('generators.vae.optimizer.decay_steps', -1, '>= 0'),
    ('generators.vae.optimizer.clip_global_norm', -1.0, '>= 0'),
    ('generators.vae.architecture', 'glow', 'use one of'),
    ('quality.neighbours', 0, 'positive'),
    ('quality.feature_classifier.batch_size', 33, 'divisible'),
    ('evaluation.review_budget', 0.0, r'in \(0, 1\)'),
    ('evaluation.more_review_budgets', (0.01, 1.5), r'in \(0, 1\), got 1.5'),
])
def test_bad_generator_quality_and_budget_values_name_their_key(key, value, message):
  config = dcgan_fmnist.get_config('tiny,generators=vae+ddpm')
  group, _, leaf = key.rpartition('.')
  config_group = config
  for part in group.split('.'):
    config_group = config_group[part]
  config_group[leaf] = value
  with pytest.raises(ConfigError, match=f"'{key}'.*{message}"):
    check(config)


def test_a_generator_family_option_misspelt_is_named_with_a_suggestion():
  config = dcgan_fmnist.get_config('tiny,generators=vae')
  config.generators.vae.options.latnt_dim = 4
  with pytest.raises(ConfigError, match="'generators.vae.options.latnt_dim'.*"
                                        "'generators.vae.options.latent_dim'"):
    check(config)


def test_unknown_variant_is_an_error():
  with pytest.raises(ValueError, match="Unknown variant 'tinyy'"):
    dcgan_fmnist.get_config('tinyy')


def test_mistyped_command_line_override_fails_before_any_work(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'fakejax.main', '--config=configs/dcgan_fmnist.py:tiny',
       f'--workdir={tmp_path}', '--config.btach_size=64'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert 'btach_size' in result.stderr
  assert not any(tmp_path.iterdir())
