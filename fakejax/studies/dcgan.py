"""The DCGAN study: train every configured GAN, then evaluate each discriminator as a detector."""

import json
import pathlib
import time

import jax
import ml_collections
from absl import logging
from jax.sharding import Mesh

from fakejax.data import pipeline
from fakejax.evaluation import discriminators, report
from fakejax.studies import common
from fakejax.train import gan_trainer, loop
from fakejax.workdir import RunDir, Workdir

TRAINING_FILE = 'training.json'


def record_training_time(run: gan_trainer.GanRun, seconds: float) -> None:
  """Adds this invocation's training wall time to the GAN's total (kept across resumes)."""
  path = run.run.path / TRAINING_FILE
  total = json.loads(path.read_text())['train_seconds'] if path.exists() else 0.0
  path.write_text(json.dumps({'num_steps': run.num_steps, 'train_seconds': total + seconds}) + '\n')


def training_seconds(runs: dict[str, RunDir]) -> dict[str, float]:
  paths = {name: run.path / TRAINING_FILE for name, run in runs.items()}
  return {name: json.loads(p.read_text())['train_seconds'] for name, p in paths.items() if p.exists()}


def write_reports(workdir: Workdir, reports: dict[str, list[dict]]) -> None:
  """Per-checkpoint reports, TensorBoard scalars, and the workdir's summary (process 0)."""
  if jax.process_index() != 0:
    return
  latest = {}
  for name, gan_reports in reports.items():
    run = workdir.gan(name)
    writer = loop.make_writer(run.tensorboard)
    for gan_report in gan_reports:
      out = report.write_checkpoint_report(run, gan_report, writer)
      logging.info('Wrote the evaluation of %s step %d to %s.', name, gan_report['step'], out)
    latest[name] = gan_reports[-1]
  summary = report.summary_markdown(
      latest, training_seconds({name: workdir.gan(name) for name in reports}))
  (workdir.root / report.REPORT_MD).write_text(summary)
  logging.info('Summary:\n%s', summary)


def evaluate(config: ml_collections.ConfigDict, workdir: Workdir, which_steps: str,
             mesh: Mesh, reals: pipeline.StudySplits | None = None) -> dict[str, list[dict]]:
  """Evaluates the chosen checkpoints of every discriminator and writes their reports."""
  reals = pipeline.load_study_splits(config.data, config.seed) if reals is None else reals
  reports = discriminators.evaluate_discriminators(
      config.gans, workdir, which_steps, reals=reals, settings=common.eval_settings(config),
      seed=config.seed, mesh=mesh)
  write_reports(workdir, reports)
  return reports


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, dict]:
  """Runs the study in `workdir` (resuming what is there); returns the latest reports."""
  workdir, mesh = common.start(config, workdir)
  reals = pipeline.load_study_splits(config.data, config.seed)
  logging.info('Real images: %d train, %d validation, %d seen-class test, %d anomaly test.',
               len(reals.train), len(reals.validation), len(reals.test_seen),
               len(reals.test_anomaly))
  settings = loop.LoopSettings.from_config(config)
  runs = {}
  for name, gan_config in config.gans.items():
    start = time.perf_counter()
    runs[name] = gan_trainer.train_gan(name, gan_config, settings, reals.train, workdir.gan(name),
                                       mesh)
    if runs[name].resumed_from_step < runs[name].num_steps and jax.process_index() == 0:
      record_training_time(runs[name], time.perf_counter() - start)
  reports = evaluate(config, workdir, 'latest', mesh, reals)
  return {name: {'report': gan_reports[-1], 'resumed_from_step': runs[name].resumed_from_step,
                 'num_steps': runs[name].num_steps} for name, gan_reports in reports.items()}
