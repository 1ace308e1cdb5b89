"""What the studies share: starting a run, and the reals and fakes of the classifier studies.

Not a study itself: studies import this module, never each other.
"""

import contextlib
import dataclasses
import functools
import json
import pathlib
import time
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from fakejax import config as config_lib
from fakejax import detectors, fusion, sharding
from fakejax.errors import UserError
from fakejax.data import fake_pool, fashion_mnist, pipeline
from fakejax.evaluation import assemble, intervals, report, restore, scoring
from fakejax.train import (checkpoints, classifier_trainer, gan_steps, gan_trainer,
                           generator_trainer, loop, real_only_trainer, replicas)
from fakejax.workdir import RunDir, Workdir, gan_workdir


def start(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> tuple[Workdir, Mesh]:
  """Builds the mesh, checks that the workdir is writable, and records the config in it."""
  workdir = Workdir(pathlib.Path(workdir))
  mesh = sharding.build_mesh()
  logging.info('Process %d of %d; %d local of %d devices.', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  checkpoints.check_workdir_writable(workdir.root, needed_bytes=0)  # Before any data or compute.
  if jax.process_index() == 0:
    workdir.config_json.write_text(config.to_json_best_effort(indent=2) + '\n')
  return workdir, mesh


def eval_settings(config: ml_collections.ConfigDict) -> assemble.EvalSettings:
  """What every report measures: the splits, the evaluation settings, the generators."""
  return assemble.EvalSettings(evals=config.evals, evaluation=config.evaluation,
                               generators=config_lib.study_generators(config))


# A trained GAN or generator of another family: both sample alike.
TrainedGenerator = gan_trainer.GanRun | generator_trainer.GeneratorRun
TRAINING_FILE = 'training.json'


def write_running_total(path: pathlib.Path, record: dict) -> None:
  """Writes a record that invocations add to (a wall time kept across resumes) through a
  temporary file: a kill mid-write leaves the previous total, not a torn file."""
  temporary = path.with_suffix('.json.tmp')
  temporary.write_text(json.dumps(record, indent=2) + '\n')
  temporary.replace(path)


def record_training_time(run: TrainedGenerator, seconds: float) -> None:
  """Adds this invocation's training wall time to the model's total (kept across resumes)."""
  path = run.run.path / TRAINING_FILE
  total = json.loads(path.read_text())['train_seconds'] if path.exists() else 0.0
  write_running_total(path, {'num_steps': run.num_steps, 'train_seconds': total + seconds})


def stage_seconds(workdir: Workdir) -> dict[str, float]:
  """The wall time of each stage recorded in the workdir (timing.json), {} if none."""
  path = workdir.timing_json
  if not path.is_file():
    return {}
  seconds = json.loads(path.read_text())
  if not (isinstance(seconds, dict) and
          all(isinstance(value, (int, float)) for value in seconds.values())):
    raise ValueError(f'{path} is not a JSON object of seconds per stage')
  return seconds


@contextlib.contextmanager
def timed_stage(workdir: Workdir, stage: str):
  """Adds the wall time of the block to `stage` in the workdir's timing.json, summed over
  the invocations that resume the study. A block stopped by an exception (preemption)
  adds what it ran: that time was spent. Process 0 writes (`write_running_total`); a
  failed write only warns, so it never hides the error that stopped the block."""
  start = time.perf_counter()
  try:
    yield
  finally:
    if jax.process_index() == 0 and workdir.root.is_dir():
      try:
        seconds = stage_seconds(workdir)
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
        write_running_total(workdir.timing_json, seconds)
      except (OSError, ValueError) as error:
        logging.warning('Could not record the time of stage %r: %s', stage, error)


def timing_summary(workdir: Workdir) -> str:
  """'training 12.3 min, evaluation 1.0 min, total 13.5 min': the recorded stages."""
  try:
    seconds = stage_seconds(workdir)
  except (OSError, ValueError) as error:
    return f'not recorded ({error})'
  return ', '.join(f'{stage} {value / 60:.1f} min' for stage, value in seconds.items())


def training_seconds(runs: dict[str, RunDir]) -> dict[str, float]:
  paths = {name: run.path / TRAINING_FILE for name, run in runs.items()}
  return {name: json.loads(p.read_text())['train_seconds'] for name, p in paths.items() if p.exists()}


def train_gans(config: ml_collections.ConfigDict, settings: loop.LoopSettings,
               reals: pipeline.StudySplits, workdir: Workdir,
               mesh: Mesh) -> dict[str, TrainedGenerator]:
  """Trains (or resumes) every GAN, then every generator of another family, in the workdir,
  adding each one's training time to its record."""
  trainers = {name: lambda name=name, gan=gan: gan_trainer.train_gan(
      name, gan, settings, reals.train, workdir.gan(name), mesh)
              for name, gan in config.gans.items()}
  trainers.update({name: lambda name=name, gen=gen: generator_trainer.train_generator(
      name, gen, settings, reals.train, workdir.generator(name), mesh)
                   for name, gen in config.generators.items()})
  runs = {}
  for name, train in trainers.items():
    start = time.perf_counter()
    runs[name] = train()
    if runs[name].resumed_from_step < runs[name].num_steps and jax.process_index() == 0:
      record_training_time(runs[name], time.perf_counter() - start)
  return runs


def replica_names(name: str, seeds: Sequence[int]) -> list[tuple[int, str]]:
  """(seed, name) of each replica of model `name`: `<name>_seed_<seed>` for several seeds."""
  return [(seeds[0], name)] if len(seeds) == 1 else [(s, f'{name}_seed_{s}') for s in seeds]


def replica_runs(runs: dict[str, TrainedGenerator],
                 seeds: Sequence[int]) -> dict[str, TrainedGenerator]:
  """Each run of several seeds' stacked replicas as one run per seed (replica_names)."""
  if len(seeds) == 1:
    return runs
  return {replica_name: run.replica(k) for name, run in runs.items()
          for k, (_, replica_name) in enumerate(replica_names(name, seeds))}


def _sampled_fakes(generate, variables: dict, latent_dim: int, *, num_train: int,
                   num_eval: int, seed: int, batch_size: int, mesh: Mesh) -> dict:
  sampler = scoring.Sampler(generate, variables, latent_dim, mesh, batch_size)
  return fake_pool.sampler_fakes(lambda num, s: sampler.generate(num, s)[0], num_train,
                                 num_eval, seed)


def _gan_fakes(gan_config, run: RunDir, name: str, step: int, *, mesh: Mesh,
               **sampling) -> dict:
  gan = restore.restore_gan(gan_config, run, name, [step], mesh)
  return _sampled_fakes(gan_steps.make_generate(gan.models), gan.g_variables, gan.latent_dim,
                        mesh=mesh, **sampling)


def _generator_fakes(gen_config, run: RunDir, name: str, step: int, *, mesh: Mesh,
                     **sampling) -> dict:
  restored = generator_trainer.restore_generator(name, gen_config, fashion_mnist.IMAGE_SHAPE,
                                                 run, mesh, step)
  return _sampled_fakes(restored.generate, restore.stack([restored.sampling_variables]),
                        restored.latent_dim, mesh=mesh, **sampling)


def latest_step(run: RunDir, kind: str, name: str) -> int:
  """The latest checkpoint of a GAN or generator a classifier study draws fakes from; it
  must hold one seed's state."""
  if not run.steps():
    raise checkpoints.CheckpointNotFoundError(
        f"No checkpoint of {kind} '{name}' in {run.checkpoints}: train it with "
        'configs/dcgan_fmnist.py, or leave gan_workdir empty to train it here.')
  step = run.steps()[-1]
  seeds = checkpoints.saved_seeds(run, step)
  if seeds:
    raise UserError(f"The {kind} '{name}' in {run.checkpoints} was trained as the replicas of "
                    f'seeds {seeds}; a classifier study draws its fakes from one seed\'s models: '
                    'set gan_workdir to a DCGAN workdir of one seed (its config.seeds empty).')
  return step


def trained_sources(config: ml_collections.ConfigDict, gan_dir: Workdir, num_train: int,
                mesh: Mesh) -> dict[str, fake_pool.FakeSource]:
  """Each GAN's and generator's latest checkpoint, which both describes its fakes and
  draws them."""
  sampling = dict(num_train=num_train, num_eval=config.evaluation.num_fake_samples,
                  seed=config.seed, batch_size=config.evaluation.batch_size, mesh=mesh)
  sources = {}
  for name, gan_config in config.gans.items():
    run = gan_dir.gan(name)
    step = latest_step(run, 'GAN', name)
    sources[name] = fake_pool.FakeSource(
        description={'architecture': gan_config.architecture, 'checkpoint_step': step},
        draw=functools.partial(_gan_fakes, gan_config, run, name, step, **sampling))
  for name, gen_config in config.generators.items():
    run = gan_dir.generator(name)
    step = latest_step(run, 'generator', name)
    sources[name] = fake_pool.FakeSource(
        description={'generator': gen_config.to_dict(), 'checkpoint_step': step},
        draw=functools.partial(_generator_fakes, gen_config, run, name, step, **sampling))
  return sources


def num_train_fakes(config: ml_collections.ConfigDict, reals: pipeline.StudySplits) -> int:
  return min(len(reals.train), config.classifier.max_train_reals)


# (reals, number of training fakes) -> generators of the study beyond its GANs, by name.
MoreSources = Callable[[pipeline.StudySplits, int], dict[str, fake_pool.FakeSource]]


def study_data(config: ml_collections.ConfigDict, workdir: Workdir, mesh: Mesh, *,
               train: loop.LoopSettings | None, more_sources: MoreSources | None = None
               ) -> fake_pool.StudyData:
  """Reals and every generator's fakes; with `train` settings, the GANs are trained here
  first when the config names no `gan_workdir` (else they must have been trained)."""
  if config.data.folder:
    return fake_pool.folder_study_data(config.data.folder, tuple(config.data.image_shape),
                                       config.data.data_dir, config.data.validation_fraction,
                                       config.seed)
  reals = pipeline.load_study_splits(config.data, config.seed)
  if train is not None and not config.gan_workdir:
    # Of several seeds, the classifiers' training varies; the fakes are one draw.
    train_gans(config, train.one_seed(), reals, workdir, mesh)
  num_train = num_train_fakes(config, reals)
  sources = trained_sources(config, gan_workdir(workdir, config.gan_workdir), num_train, mesh)
  if more_sources is not None:
    sources.update(more_sources(reals, num_train))
  fakes = fake_pool.load_pool(workdir.fake_pool, sources, num_train=num_train,
                              num_eval=config.evaluation.num_fake_samples, seed=config.seed)
  data = fake_pool.StudyData(reals=reals, fakes=fakes)
  log_data(data)
  return data


def log_data(data: fake_pool.StudyData) -> None:
  reals = data.reals
  logging.info('Reals: %d train, %d validation, %d seen test, %d anomaly test; fakes of %s.',
               len(reals.train), len(reals.validation), len(reals.test_seen),
               len(reals.test_anomaly), sorted(data.fakes))


def classifier_seeds(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The seeds of a classifier study's replicas (config.seeds, or the one config.seed)."""
  return replicas.seeds_of(config.seed, config.seeds)


def evaluate_named_detector(config: ml_collections.ConfigDict, workdir: Workdir, name: str,
                            which_steps: str, data: fake_pool.StudyData,
                            mesh: Mesh) -> list[dict]:
  """Reports of detector `name`'s chosen checkpoints (a classifier, real-only detector or
  fusion) on every split of config.evals; of a run of several seeds, of every replica's,
  replica-major, scored in one call.

  Its 'own' fakes pool the generators it trained on; every generator's test fakes are
  also a set of their own, so that splits may name any generator.
  """
  seeds = classifier_seeds(config)
  if len(seeds) == 1:
    entry = detectors.find_detector(config, workdir, name)
    restore_fn = detectors.restore_detector
  else:  # Any replica's entry names the run; all replicas are restored.
    entry = detectors.find_detector(config, workdir, detectors.replica_name(name, seeds[0]))
    restore_fn = detectors.restore_replicas
  steps = restore.select_steps(entry.steps(), which_steps)
  detector = restore_fn(config, entry, steps, mesh, config.evaluation.batch_size)
  scorer = detector.scorer
  if len(seeds) == 1 and name in fusion_members(config):
    scorer = fusion.RememberingScorer(scorer, detectors.member_key(detector))
  def own(split: str) -> np.ndarray:  # The same fakes for every checkpoint: [K, N, ...].
    fakes = fake_pool.fakes_of(data, detector.trained_on, split)
    return np.broadcast_to(fakes, (len(detector.steps), *fakes.shape))
  shared = {f'gan:{generator}': fakes['test'] for generator, fakes in data.fakes.items()}
  shared.update(assemble.folder_fakes(config.evals, tuple(config.data.image_shape)))
  sets = assemble.score_sets(scorer, data.reals, own('test'), own('validation'), shared,
                             assemble.perturbed_reals(config.evals, data.reals))
  info = assemble.DetectorInfo(name=name, architecture=detector.architecture,
                               steps=detector.steps, trained_on=detector.trained_on)
  return assemble.evaluate_detector(eval_settings(config), info, sets)


def fusion_members(config: ml_collections.ConfigDict) -> set[str]:
  """The detectors that some fusion of the config weighs."""
  return {member for fused in config.get('fusions', {}).values() for member in fused.members}


@dataclasses.dataclass(frozen=True)
class SeedReports:
  """A detector's reports per checkpoint: one per seed, and their combination."""
  combined: list[dict]  # Of several seeds, figures as intervals (evaluation/intervals.py).
  by_seed: dict[int, list[dict]]

  def latest(self) -> dict[int, dict]:
    return {seed: reports[-1] for seed, reports in self.by_seed.items()}


def evaluate_named_detector_seeds(config: ml_collections.ConfigDict, workdir: Workdir,
                                  name: str, which_steps: str, data: fake_pool.StudyData,
                                  mesh: Mesh) -> SeedReports:
  """`evaluate_named_detector`, each replica's reports as its single-seed run's would be, and
  their combination."""
  reports = evaluate_named_detector(config, workdir, name, which_steps, data, mesh)
  return seed_reports(by_replica(reports, classifier_seeds(config)))


def by_replica(reports: list[dict], seeds: Sequence[int]) -> dict[int, list[dict]]:
  """The reports of every replica's checkpoints, replica-major, -> each seed's."""
  per_replica = len(reports) // len(seeds)
  return {seed: reports[k * per_replica:(k + 1) * per_replica] for k, seed in enumerate(seeds)}


def seed_reports(by_seed: dict[int, list[dict]]) -> SeedReports:
  """Each seed's reports of the same checkpoints, and their combination per checkpoint
  (one seed's reports as they are)."""
  if len(by_seed) == 1:
    return SeedReports(combined=next(iter(by_seed.values())), by_seed=by_seed)
  combined = [intervals.combine_seeds(dict(zip(by_seed, same_step)))
              for same_step in zip(*by_seed.values())]
  return SeedReports(combined=combined, by_seed=by_seed)


def across_seeds(rows_by_seed: dict[int, list[dict]]) -> list[dict]:
  """Table rows computed per seed (the same rows for each) -> one row each, its figures as
  intervals over the seeds where there are several (and the seeds named in the row)."""
  tables = list(rows_by_seed.values())
  if len(tables) == 1:
    return tables[0]
  return [{**intervals.combine(list(rows)), 'seeds': list(rows_by_seed)} for rows in zip(*tables)]


def write_reports(run: RunDir, name: str, reports: list[dict] | SeedReports) -> None:
  """Each checkpoint's report files and TensorBoard scalars of detector `name` (process 0);
  of several seeds, each seed's in its own folder beside their combination."""
  if jax.process_index() != 0:
    return
  by_seed = reports.by_seed if isinstance(reports, SeedReports) else {None: reports}
  combined = reports.combined if isinstance(reports, SeedReports) else reports
  writer = loop.make_writer(run.tensorboard)
  for i, checkpoint_report in enumerate(combined):
    if len(by_seed) == 1:
      out = report.write_checkpoint_report(run, checkpoint_report, writer)
    else:
      out = report.write_seeds_report(run, checkpoint_report, writer, {
          seed: by_step[i] for seed, by_step in by_seed.items()})
    logging.info('Wrote the evaluation of %s at step %d to %s.', name,
                 checkpoint_report['step'], out)


def train_classifier(config: ml_collections.ConfigDict, settings: loop.LoopSettings,
                     workdir: Workdir, name: str, classifier: classifier_trainer.Classifier, *,
                     frozen: dict, metadata: dict, trained_on: Sequence[str],
                     data: fake_pool.StudyData, mesh: Mesh) -> None:
  """Trains (or resumes) classifier `name` on training reals against the fakes of
  `trained_on`; validation AP on their validation fakes steers its schedule."""
  job = classifier_trainer.classifier_job(
      name, config.classifier, classifier, data.reals.train.shape[1:], frozen=frozen,
      skip_nonfinite=config.skip_nonfinite_updates,
      metadata={**metadata, 'trained_on': list(trained_on)}, mesh=mesh)
  validation = classifier_trainer.validation_set(
      data.reals.validation, fake_pool.fakes_of(data, trained_on, 'validation'))
  job.on_epoch_end = classifier_trainer.plateau_schedule(
      config.classifier, classifier, validation, mesh, config.evaluation.batch_size)
  train_set = classifier_trainer.train_set(
      data.reals.train[:config.classifier.max_train_reals],
      [data.fakes[generator]['train'] for generator in trained_on])
  loop.train(job, settings.for_model(config.classifier), train_set, workdir.classifier(name),
             mesh)


def train_real_only(config: ml_collections.ConfigDict, settings: loop.LoopSettings,
                    workdir: Workdir, name: str, data: fake_pool.StudyData, mesh: Mesh) -> None:
  """Trains (or resumes) real-only detector `name` (config.real_only.<name>) on training
  reals, no fakes; of several seeds, as replicas."""
  real_only_config = config.real_only[name]
  job = real_only_trainer.real_only_job(name, real_only_config, data.reals.train.shape[1:],
                                        config.skip_nonfinite_updates)
  reals = data.reals.train[:real_only_config.max_train_reals]
  loop.train(job, settings.for_model(real_only_config), real_only_trainer.train_set(reals),
             workdir.real_only(name), mesh)


def fit_fusion(config: ml_collections.ConfigDict, workdir: Workdir, name: str,
               data: fake_pool.StudyData, mesh: Mesh) -> fusion.Fusion:
  """Fits fusion `name` (config.fusions.<name>) on validation reals and on the validation
  fakes of its `fit_on` generators, from its members at their latest checkpoints."""
  fusion_config = config.fusions[name]
  batch_size = config.evaluation.batch_size
  members = [detectors.restore_latest(config, workdir, member, mesh, batch_size)
             for member in fusion_config.members]
  scores = lambda images: np.stack([fusion.member_score(detectors.member_key(member),
                                                        member.scorer, images)
                                     for member in members])
  trained_on = sorted(set(fusion_config.fit_on).union(*(m.trained_on for m in members)))
  fitted = fusion.fit(fusion_config.members, [m.steps[-1] for m in members],
                      fusion_config.fit_on, trained_on, scores(data.reals.validation),
                      {g: scores(data.fakes[g]['validation']) for g in fusion_config.fit_on})
  logging.info('Fusion %s of %s: weights %s.', name, fitted.members, fitted.weights)
  return fitted
