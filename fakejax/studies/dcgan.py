"""The DCGAN study: train every configured GAN (and generator of another family), measure
their quality, then evaluate each discriminator as a detector."""

import pathlib

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from fakejax.data import fake_pool, fashion_mnist, pipeline
from fakejax.evaluation import (discriminators, generator_quality, intervals, report, restore,
                                scoring)
from fakejax.studies import common
from fakejax.train import generator_trainer, loop, replicas
from fakejax.workdir import Workdir


def write_reports(workdir: Workdir, reports: dict[str, common.SeedReports]) -> None:
  """Each GAN's per-checkpoint reports (and each seed's, for several), TensorBoard scalars,
  and the workdir's summary (process 0)."""
  if jax.process_index() != 0:
    return
  for name, gan_reports in reports.items():
    common.write_reports(workdir.gan(name), name, gan_reports)
  summary = report.summary_markdown(
      {name: gan_reports.combined[-1] for name, gan_reports in reports.items()},
      common.training_seconds({name: workdir.gan(name) for name in reports}))
  (workdir.root / report.REPORT_MD).write_text(summary)
  logging.info('Summary:\n%s', summary)


def evaluate(config: ml_collections.ConfigDict, workdir: Workdir, which_steps: str,
             mesh: Mesh, reals: pipeline.StudySplits | None = None) -> dict[str, list[dict]]:
  """Evaluates the chosen checkpoints of every discriminator and writes their reports; of
  several seeds, every replica's in one scoring call per GAN, each replica as the
  single-seed run of its seed would be (the same test sets, the other models' fakes from
  their same replica), and each figure's interval."""
  reals = pipeline.load_study_splits(config.data, config.seed) if reals is None else reals
  seeds = replicas.seeds_of(config.seed, config.seeds)
  several = seeds if len(seeds) > 1 else ()
  replica_reports = discriminators.evaluate_discriminators(
      config.gans, workdir, which_steps, reals=reals, settings=common.eval_settings(config),
      seed=config.seed, mesh=mesh, other_fakes=other_family_fakes(config, workdir, mesh),
      seeds=several)
  reports = {name: common.seed_reports(common.by_replica(gan_reports, seeds))
             for name, gan_reports in replica_reports.items()}
  write_reports(workdir, reports)
  return {name: gan_reports.combined for name, gan_reports in reports.items()}


def other_family_fakes(config: ml_collections.ConfigDict, workdir: Workdir,
                       mesh: Mesh) -> dict[str, np.ndarray]:
  """Test fakes [N, ...] of each generator of another family (latest checkpoint), or of
  several seeds each replica's [K, N, ...]: the discriminators' 'others' split holds them
  beside the other GANs' fakes."""
  seed = config.seed + fake_pool.TEST_FAKES_SEED_OFFSET
  num_replicas = len(replicas.seeds_of(config.seed, config.seeds))
  def samples(name: str, gen_config, replica: int | None) -> np.ndarray:
    run = generator_trainer.restore_generator(name, gen_config, fashion_mnist.IMAGE_SHAPE,
                                              workdir.generator(name), mesh, replica=replica)
    return generator_samples(run, config.evaluation.num_fake_samples, seed, mesh,
                             config.evaluation.batch_size)
  if num_replicas == 1:
    return {name: samples(name, gen_config, None) for name, gen_config in config.generators.items()}
  return {name: np.stack([samples(name, gen_config, k) for k in range(num_replicas)])
          for name, gen_config in config.generators.items()}


def generator_samples(run: common.TrainedGenerator, num_images: int, seed: int, mesh: Mesh,
                      batch_size: int) -> np.ndarray:
  """uint8 samples of a trained generator."""
  sampler = scoring.Sampler(run.generate, restore.stack([run.sampling_variables]),
                            run.latent_dim, mesh, batch_size)
  return sampler.generate(num_images, seed)[0]


def across_seeds(rows: dict[str, dict], runs: dict[str, common.TrainedGenerator]
                 ) -> dict[str, tuple[str, dict]]:
  """'<model> (K seeds)' -> (one of its replicas' names, its quality as intervals), for each
  model trained as K > 1 replicas (common.replica_runs names them apart from the model)."""
  by_model = {}
  for replica_name, run in runs.items():
    if replica_name != run.name:
      by_model.setdefault(run.name, []).append(replica_name)
  return {f'{model} ({len(names)} seeds)': (names[0], intervals.combine([rows[n] for n in names]))
          for model, names in by_model.items()}


def measure_quality(config: ml_collections.ConfigDict, workdir: Workdir,
                    runs: dict[str, common.TrainedGenerator], reals: pipeline.StudySplits,
                    mesh: Mesh) -> dict[str, dict]:
  """Each generator's Fréchet distance, precision and recall (evaluation/generator_quality)."""
  quality_config, batch_size = config.quality, config.evaluation.batch_size
  features = generator_quality.feature_function(
      # The measuring classifier is an instrument, trained once (config.seed) for all replicas.
      quality_config, loop.LoopSettings.from_config(config, seeds=()), config.data, workdir, mesh,
      batch_size)
  seed = config.seed + generator_quality.QUALITY_SAMPLES_SEED_OFFSET
  samples = {name: generator_samples(run, quality_config.num_samples, seed, mesh, batch_size)
             for name, run in runs.items()}
  rows = generator_quality.measure(samples, reals, features, quality_config.neighbours)
  seconds = common.training_seconds({run.name: run.run for run in runs.values()})
  models = {**config.gans, **config.generators}
  # A run of several seeds trains its replicas together: the time is theirs in all.
  details = {name: {'family': run.family, 'architecture': models[run.name].architecture,
                    'steps': run.num_steps, 'train_seconds': round(seconds.get(run.name, 0.0), 1)}
             for name, run in runs.items()}
  across = across_seeds(rows, runs)
  details.update({name: details[replica] for name, (replica, _) in across.items()})
  rows.update({name: row for name, (_, row) in across.items()})
  table = generator_quality.write(workdir.quality, rows, details, samples)
  logging.info('Generator quality (against seen-class test reals):\n%s', table)
  return rows


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, dict]:
  """Runs the study in `workdir` (resuming what is there); returns the latest reports."""
  workdir, mesh = common.start(config, workdir)
  reals = pipeline.load_study_splits(config.data, config.seed)
  logging.info('Real images: %d train, %d validation, %d seen-class test, %d anomaly test.',
               len(reals.train), len(reals.validation), len(reals.test_seen),
               len(reals.test_anomaly))
  with common.timed_stage(workdir, 'training'):
    runs = common.train_gans(config, loop.LoopSettings.from_config(config), reals, workdir,
                             mesh)
  trained = {name: {'resumed_from_step': run.resumed_from_step, 'num_steps': run.num_steps}
             for name, run in runs.items()}
  if config.train_only:
    logging.info('Trained %s; train_only: no quality measurement nor evaluation.', sorted(runs))
    return trained
  seeds = replicas.seeds_of(config.seed, config.seeds)
  with common.timed_stage(workdir, 'quality'):
    quality = measure_quality(config, workdir, common.replica_runs(runs, seeds), reals, mesh)
  with common.timed_stage(workdir, 'evaluation'):
    reports = evaluate(config, workdir, 'latest', mesh, reals)
  results = {name: {**trained[name],
                    'quality': {seed: quality[replica_name]
                                for seed, replica_name in common.replica_names(name, seeds)}}
             for name in runs}
  for name, gan_reports in reports.items():  # GANs only: the others have no discriminator.
    results[name]['report'] = gan_reports[-1]
  return results

