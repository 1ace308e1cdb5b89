"""The study: train every configured GAN, then score its discriminator as a fake detector."""

import json
import pathlib

import jax
import ml_collections
import numpy as np
from absl import logging
from PIL import Image

from fakejax import sharding
from fakejax.config import validate_config
from fakejax.data import pipeline
from fakejax.evaluation import detector
from fakejax.models import GAN_ARCHITECTURES
from fakejax.train import gan_state, gan_trainer

DETECTOR_METRICS_FILE = 'detector_metrics.json'


def first_detector_numbers(run: gan_trainer.GanRun, splits: pipeline.StudySplits,
                           config: ml_collections.ConfigDict, mesh) -> dict:
  """Scores the discriminator on seen/anomaly test reals and fresh own-generator fakes."""
  score, generate_uint8 = detector.jit_scoring(run.models, mesh)
  d_variables = gan_state.discriminator_variables(run.state)
  batch_size = config.evaluation.batch_size
  fakes = detector.sample_images(
      generate_uint8, gan_state.generator_variables(run.state),
      num_images=config.evaluation.num_fake_samples, latent_dim=run.latent_dim,
      # A seed of its own: these fakes are not the ones drawn during training.
      seed=config.seed + 1, mesh=mesh, batch_size=batch_size)
  scores = {name: detector.score_images(score, d_variables, images, mesh=mesh,
                                        batch_size=batch_size)
            for name, images in (('seen', splits.test_seen), ('anomaly', splits.test_anomaly),
                                 ('fakes', fakes))}
  summary = detector.summarise(scores['seen'], scores['anomaly'], scores['fakes'])
  return {'step': run.num_steps, **summary}, fakes


def write_outputs(run: gan_trainer.GanRun, numbers: dict, fakes: np.ndarray) -> None:
  """detector_metrics.json, TensorBoard scalars and a PNG of samples, from process 0."""
  if jax.process_index() != 0:
    return
  (run.workdir / DETECTOR_METRICS_FILE).write_text(json.dumps(numbers, indent=2) + '\n')
  writer = gan_trainer.make_writer(run.workdir / 'tensorboard')
  writer.write_scalars(numbers['step'], {
      f'detector/{split}/{metric}': value
      for split, values in numbers.items() if isinstance(values, dict)
      for metric, value in values.items() if metric != 'support'})
  writer.flush()
  grid = gan_trainer.image_grid(fakes[:gan_trainer.NUM_SAMPLES_IN_GRID])
  Image.fromarray(grid[..., 0]).resize((grid.shape[1] * 2, grid.shape[0] * 2),
                                       Image.NEAREST).save(run.workdir / 'samples.png')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, dict]:
  """Runs the study in `workdir` (resuming what is there); returns numbers by GAN name."""
  workdir = pathlib.Path(workdir)
  mesh = sharding.build_mesh()
  validate_config(config, num_devices=mesh.size, architectures=GAN_ARCHITECTURES)
  logging.info('Process %d of %d; %d local of %d devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  splits = pipeline.load_study_splits(config)
  logging.info('Real images: %d train, %d validation, %d seen-class test, %d anomaly test.',
               len(splits.train), len(splits.validation), len(splits.test_seen),
               len(splits.test_anomaly))
  if jax.process_index() == 0:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2) + '\n')
  results = {}
  for name in config.gans:
    run = gan_trainer.train_gan(config, name, splits.train, workdir, mesh)
    numbers, fakes = first_detector_numbers(run, splits, config, mesh)
    write_outputs(run, numbers, fakes)
    logging.info('%s detector: %s', name, json.dumps(numbers))
    results[name] = {'numbers': numbers, 'resumed_from_step': run.resumed_from_step,
                     'num_steps': run.num_steps}
  return results
