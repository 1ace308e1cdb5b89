"""The study: train every configured GAN, then evaluate each discriminator as a fake detector."""

import json
import pathlib
import time

import jax
import ml_collections
from absl import logging

from fakejax import sharding
from fakejax.config import validate_config
from fakejax.data import pipeline
from fakejax.evaluation import evaluator, report
from fakejax.models import GAN_ARCHITECTURES
from fakejax.train import checkpoints, gan_trainer, loop

TRAINING_FILE = 'training.json'


def record_training_time(run: gan_trainer.GanRun, seconds: float) -> None:
  """Adds this invocation's training wall time to the GAN's total (kept across resumes)."""
  path = run.workdir / TRAINING_FILE
  total = json.loads(path.read_text())['train_seconds'] if path.exists() else 0.0
  path.write_text(json.dumps({'num_steps': run.num_steps, 'train_seconds': total + seconds}) + '\n')


def training_seconds(workdir: pathlib.Path, names) -> dict[str, float]:
  paths = {name: workdir / name / TRAINING_FILE for name in names}
  return {name: json.loads(p.read_text())['train_seconds'] for name, p in paths.items() if p.exists()}


def write_reports(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                  reports: dict[str, list[dict]]) -> None:
  """Per-checkpoint reports, TensorBoard scalars, and the workdir's summary (process 0)."""
  if jax.process_index() != 0:
    return
  latest = {}
  for name, gan_reports in reports.items():
    writer = loop.make_writer(workdir / name / 'tensorboard')
    for gan_report in gan_reports:
      out = report.write_checkpoint_report(workdir / name, gan_report, writer)
      logging.info('Wrote the evaluation of %s step %d to %s.', name, gan_report['step'], out)
    latest[name] = gan_reports[-1]
  summary = report.summary_markdown(latest, training_seconds(workdir, config.gans.keys()))
  (workdir / report.REPORT_MD).write_text(summary)
  logging.info('Summary:\n%s', summary)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, dict]:
  """Runs the study in `workdir` (resuming what is there); returns the latest reports."""
  workdir = pathlib.Path(workdir)
  mesh = sharding.build_mesh()
  validate_config(config, num_devices=mesh.size, architectures=GAN_ARCHITECTURES)
  logging.info('Process %d of %d; %d local of %d devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  checkpoints.check_workdir_writable(workdir, needed_bytes=0)  # Before any data or compute.
  splits = pipeline.load_study_splits(config)
  logging.info('Real images: %d train, %d validation, %d seen-class test, %d anomaly test.',
               len(splits.train), len(splits.validation), len(splits.test_seen),
               len(splits.test_anomaly))
  if jax.process_index() == 0:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2) + '\n')
  runs = {}
  for name in config.gans:
    start = time.perf_counter()
    run = gan_trainer.train_gan(config, name, splits.train, workdir, mesh)
    if run.resumed_from_step < run.num_steps and jax.process_index() == 0:
      record_training_time(run, time.perf_counter() - start)
    runs[name] = run
  reports = evaluator.evaluate_workdir(config, workdir, 'latest', mesh=mesh, splits=splits)
  write_reports(config, workdir, reports)
  return {name: {'report': gan_reports[-1], 'resumed_from_step': runs[name].resumed_from_step,
                 'num_steps': runs[name].num_steps} for name, gan_reports in reports.items()}
