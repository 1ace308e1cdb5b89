"""The non-adversarial generator families (VAE, diffusion, flow): they learn, resume after a kill
to the parameters of an uninterrupted run, and sample deterministically per seed."""

import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dcgan_fmnist
from fakejax import errors, sharding
from fakejax.data import fake_pool
from fakejax.evaluation import scoring
from fakejax.studies import common, dcgan
from fakejax.models.flow import RealNvp
from fakejax.train import diffusion_steps, generator_state, generator_trainer, loop
from fakejax.workdir import Workdir
from tests.conftest import final_state

FAMILIES = ('vae', 'ddpm', 'realnvp')
STEPS_TO_LEARN = 12
LEARNING_RATE_TO_LEARN = {'realnvp': 1e-2}
# The flow's loss, bits per dimension, has a floor far from 0: measured, it fell from 8.45
# to 6.86 (a ratio of 0.86 of the first three steps' mean).
FALL_TO = {'realnvp': 0.9}
IMAGE_SHAPE = (28, 28, 1)


def tiny_generator(name: str):
  config = dcgan_fmnist.get_config(f'tiny,gans=dcgan_tf,generators={name}')
  return config, config.generators[name]


def blobs(count: int, seed: int = 0) -> np.ndarray:
  """Dark images, each with one bright square: simple enough to learn in a few steps."""
  rng = np.random.default_rng(seed)
  images = np.full((count, *IMAGE_SHAPE), 20, np.uint8)
  for image, (row, col) in zip(images, rng.integers(2, 18, (count, 2))):
    image[row:row + 8, col:col + 8] = 230
  return images


@pytest.mark.parametrize('name', FAMILIES)
def test_loss_falls_in_training(name):
  _, gen_config = tiny_generator(name)
  # A larger step than the config's, to see it learn in a few steps: measured, the loss
  # fell to 0.27 (VAE) and 0.45 (noise loss) of its start.
  gen_config.optimizer.learning_rate = LEARNING_RATE_TO_LEARN.get(name, 2e-3)
  mesh = sharding.build_mesh(jax.devices()[:1])
  job, _ = generator_trainer.generator_job(name, gen_config, IMAGE_SHAPE, 0, False, mesh)
  step = jax.jit(job.train_step)
  state, images = job.init(jax.random.PRNGKey(0)), blobs(8)
  losses = []
  for _ in range(STEPS_TO_LEARN):
    state, metrics = step(state, images)
    losses.append(float(metrics['loss']))
  assert np.mean(losses[-3:]) < FALL_TO.get(name, 0.8) * np.mean(losses[:3]), losses


@pytest.mark.parametrize('name', FAMILIES)
def test_killed_run_resumes_to_the_parameters_of_an_uninterrupted_run(name, tmp_path):
  config, gen_config = tiny_generator(name)
  gen_config.batch_size, gen_config.num_epochs = 8, 1
  config.checkpoint_every_steps, config.sample_every_steps = 3, 100
  settings = loop.LoopSettings.from_config(config)
  train = lambda root: generator_trainer.train_generator(
      name, gen_config, settings, blobs(48), Workdir(root).generator(name),
      sharding.build_mesh())
  uninterrupted = train(tmp_path / 'uninterrupted')
  assert uninterrupted.num_steps == 6
  # A run killed after its step-3 checkpoint leaves no later one.
  shutil.copytree(tmp_path / 'uninterrupted', tmp_path / 'killed')
  shutil.rmtree(Workdir(tmp_path / 'killed').generator(name).checkpoints / '6')
  assert train(tmp_path / 'killed').resumed_from_step == 3
  got, want = (final_state(Workdir(tmp_path / run).generator(name).checkpoints)
               for run in ('killed', 'uninterrupted'))
  for part in ('step', 'rng', 'params', 'opt_state', 'ema_params'):
    for a, b in zip(jax.tree.leaves(got[part]), jax.tree.leaves(want[part]), strict=True):
      np.testing.assert_array_equal(a, b)
  # A detector study restores it from the workdir and draws its fakes for the pool.
  config.gans = {}
  config.generators = {name: gen_config}
  (source,) = common.trained_sources(config, Workdir(tmp_path / 'killed'), 8,
                                     sharding.build_mesh()).values()
  assert source.description['checkpoint_step'] == 6
  fakes = source.draw()
  assert {split: fakes[split].shape for split in fakes} == {
      'train': (8, *IMAGE_SHAPE), 'validation': (config.evaluation.num_fake_samples, *IMAGE_SHAPE),
      'test': (config.evaluation.num_fake_samples, *IMAGE_SHAPE)}
  assert fakes['train'].dtype == np.uint8 and np.any(fakes['validation'] != fakes['test'])
  # The DCGAN study's discriminators meet the same test fakes among 'others'.
  others = dcgan.other_family_fakes(config, Workdir(tmp_path / 'killed'), sharding.build_mesh())
  np.testing.assert_array_equal(others[name], fakes['test'])


def test_a_decay_shorter_than_training_is_refused_before_any_step(tmp_path):
  config, gen_config = tiny_generator('realnvp')
  gen_config.batch_size, gen_config.num_epochs = 8, 2
  gen_config.optimizer.decay_steps = 10  # 48 images at batch 8 for 2 epochs: 12 steps.
  run = Workdir(tmp_path).generator('realnvp')
  with pytest.raises(errors.UserError, match=r"'generators.realnvp.optimizer.decay_steps' "
                     r'is 10, but realnvp trains 12 steps.*0 for the last 2. Set it to 12'):
    generator_trainer.train_generator('realnvp', gen_config, loop.LoopSettings.from_config(
        config), blobs(48), run, sharding.build_mesh())
  assert not run.path.exists()


@pytest.mark.parametrize('name', FAMILIES)
def test_sampler_is_deterministic_per_seed(name):
  _, gen_config = tiny_generator(name)
  mesh = sharding.build_mesh()
  job, generator = generator_trainer.generator_job(name, gen_config, IMAGE_SHAPE, 0, False, mesh)
  state = job.init(jax.random.PRNGKey(0))
  variables = jax.tree.map(lambda leaf: leaf[None], generator_state.sampling_variables(state))
  sampler = scoring.Sampler(generator.generate(), variables, generator.latent_dim, mesh, 8)
  first, again, other = (sampler.generate(12, seed) for seed in (3, 3, 4))
  assert first.shape == (1, 12, *IMAGE_SHAPE) and first.dtype == np.uint8
  np.testing.assert_array_equal(first, again)
  assert np.any(first != other)


def test_slow_sampling_logs_its_progress(monkeypatch, caplog):
  _, gen_config = tiny_generator('vae')
  mesh = sharding.build_mesh()
  job, generator = generator_trainer.generator_job('vae', gen_config, IMAGE_SHAPE, 0, False, mesh)
  variables = jax.tree.map(lambda leaf: leaf[None],
                           generator_state.sampling_variables(job.init(jax.random.PRNGKey(0))))
  sampler = scoring.Sampler(generator.generate(), variables, generator.latent_dim, mesh, 8)
  monkeypatch.setattr(scoring, 'PROGRESS_EVERY_S', 0.0)  # As if every batch were slow.
  caplog.set_level(logging.INFO, logger='absl')
  sampler.generate(20, 0)
  progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith('Sampled')]
  # Batches of 8: after 8 and 16 of 20; none at the end, which its caller reports.
  assert [m.split(' images/s')[0].split(' (')[0] for m in progress] == [
      'Sampled 8 of 20 images per checkpoint', 'Sampled 16 of 20 images per checkpoint']
  assert all('ETA' in m for m in progress)


def test_a_pool_described_with_tuples_is_reused_not_drawn_again(tmp_path):
  draws = []
  def draw():
    draws.append(1)
    return {split: blobs(2, seed) for seed, split in enumerate(('train', 'validation', 'test'))}
  sources = {'vae': fake_pool.FakeSource(description={'features': (8, 16)}, draw=draw)}
  first, again = (fake_pool.load_pool(tmp_path / 'pool', sources, num_train=2, num_eval=2,
                                      seed=0) for _ in range(2))
  assert len(draws) == 1
  np.testing.assert_array_equal(first['vae']['test'], again['vae']['test'])


def test_the_dcgan_study_samples_a_generator_as_it_samples_a_gan():
  _, gen_config = tiny_generator('vae')
  mesh = sharding.build_mesh()
  job, generator = generator_trainer.generator_job('vae', gen_config, IMAGE_SHAPE, 0, False, mesh)
  state = job.init(jax.random.PRNGKey(0))
  run = generator_trainer.GeneratorRun(
      name='vae', generator=generator, sampling_variables=generator_state.sampling_variables(state),
      num_steps=0, resumed_from_step=0, run=None)
  samples = dcgan.generator_samples(run, 10, seed=7, mesh=mesh, batch_size=8)
  sampler = scoring.Sampler(generator.generate(), jax.tree.map(
      lambda leaf: leaf[None], run.sampling_variables), generator.latent_dim, mesh, 8)
  np.testing.assert_array_equal(samples, sampler.generate(10, 7)[0])
  assert run.family == 'vae' and samples.shape == (10, *IMAGE_SHAPE)


class OracleNoise:
  """A 'model' that knows the clean image: it predicts exactly the noise in x_t."""

  def __init__(self, clean: np.ndarray, schedule: str, num_timesteps: int):
    self.clean = jnp.asarray(clean)
    self.signal = jnp.asarray(diffusion_steps.alphas_cumprod(schedule, num_timesteps),
                              jnp.float32)

  def apply(self, variables, noisy, timesteps):
    del variables
    kept = self.signal[timesteps][:, None, None, None]
    return (noisy - jnp.sqrt(kept) * self.clean) / jnp.sqrt(1.0 - kept)


@pytest.mark.parametrize('schedule', diffusion_steps.NOISE_SCHEDULES)
def test_ddim_with_a_perfect_noise_model_returns_the_clean_image(schedule):
  clean = np.random.default_rng(0).uniform(-1, 1, (3, *IMAGE_SHAPE)).astype(np.float32)
  model = OracleNoise(clean, schedule, 1000)
  generate = diffusion_steps._ddim_sampler(model, schedule, 1000, 10, IMAGE_SHAPE)
  start = jax.random.normal(jax.random.PRNGKey(0), (3, int(np.prod(IMAGE_SHAPE))))
  np.testing.assert_allclose(jax.jit(generate)({}, start), clean, atol=1e-4)


def test_schedules_lose_signal_monotonically_and_ddim_visits_steps_downwards():
  for schedule in diffusion_steps.NOISE_SCHEDULES:
    signal = diffusion_steps.alphas_cumprod(schedule, 1000)
    assert np.all(np.diff(signal) < 0) and 0 < signal[-1] < 0.01 and signal[0] > 0.99
  steps, next_steps = diffusion_steps.ddim_timesteps(1000, 10)
  assert steps[0] == 999 and next_steps[-1] == -1 and len(steps) == 10
  np.testing.assert_array_equal(steps[1:], next_steps[:-1])


def test_flow_inverts_exactly_and_its_log_det_is_the_jacobians():
  model = RealNvp(features=(8,), steps_per_level=2)
  images = jax.random.normal(jax.random.PRNGKey(0), (2, *IMAGE_SHAPE))
  variables = model.init(jax.random.PRNGKey(1), images)
  # Away from the zero-initialised start, where every coupling is near the identity.
  variables = jax.tree.map(
      lambda p: p + 0.05 * jax.random.normal(jax.random.PRNGKey(2), p.shape), variables)
  latents, log_det = model.apply(variables, images)
  np.testing.assert_allclose(model.apply(variables, latents, method=RealNvp.inverse), images,
                             atol=1e-5)
  forward = lambda flat: model.apply(variables, flat.reshape(1, *IMAGE_SHAPE))[0][0]
  jacobian = jax.jacfwd(forward)(images[0].reshape(-1))
  np.testing.assert_allclose(np.linalg.slogdet(np.asarray(jacobian))[1], log_det[0], rtol=1e-4)
