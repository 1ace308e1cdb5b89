"""The autoencoder-GAN study (after Zhang et al. 2019, "AutoGAN").

1. Autoencoders of each configured depth are trained adversarially on real images only.
2. For every classifier input (the image, or its reconstruction, residual or spectrum
   under each autoencoder) an AlexNet-style classifier learns reals against the fakes of
   the training generators.
3. Each classifier is evaluated on the evaluation module's splits: reals of seen and
   anomaly classes, fakes of its training generators and of generators it never saw.
4. One table compares input x autoencoder depth x split.

Fakes come from this project's GANs (Fashion-MNIST) or from a real/fake image folder.
"""

import dataclasses
import json
import pathlib

import jax
import ml_collections
from absl import logging
from jax.sharding import Mesh

from fakejax.data import fake_pool, pipeline, transforms
from fakejax.evaluation import intervals, report
from fakejax.studies import common
from fakejax.train import autoencoder_trainer, classifier_trainer, loop
from fakejax.workdir import Workdir

COMPARISON_MD = 'comparison.md'
COMPARISON_JSON = 'comparison.json'
# The operating point of the comparison: Youden's J, chosen on validation.
COMPARISON_THRESHOLD = 'youden'


@dataclasses.dataclass(frozen=True)
class Variant:
  """One classifier of the study: an input kind, under one autoencoder or none."""
  input_kind: str
  autoencoder: str | None  # A key of config.autoencoders.

  @property
  def name(self) -> str:
    return self.input_kind + (f'@{self.autoencoder}' if self.autoencoder else '')


def variants(config: ml_collections.ConfigDict) -> list[Variant]:
  out = []
  for kind in config.classifier.inputs:
    if kind in transforms.AUTOENCODER_INPUTS:
      out += [Variant(kind, name) for name in config.autoencoders]
    else:
      out.append(Variant(kind, None))
  return out


def train_autoencoders(autoencoders: ml_collections.ConfigDict, settings: loop.LoopSettings,
                       workdir: Workdir, reals: pipeline.StudySplits,
                       mesh: Mesh) -> dict[str, dict]:
  """Trains (or resumes) every autoencoder on the training reals; their parameters."""
  grid_images = reals.validation[:autoencoder_trainer.NUM_IMAGES_IN_GRID]
  params = {}
  for name, ae_config in autoencoders.items():
    params[name] = autoencoder_trainer.train_autoencoder(
        name, ae_config, settings.for_model(ae_config), reals.train, grid_images, workdir.autoencoder(name), mesh)
  return params


def restore_autoencoders(config: ml_collections.ConfigDict, workdir: Workdir,
                         image_shape: tuple[int, ...], mesh: Mesh) -> dict[str, dict]:
  return {name: autoencoder_trainer.restore_autoencoder(
      name, ae_config, image_shape, workdir.autoencoder(name), mesh)[0]
          for name, ae_config in config.autoencoders.items()}


def train_classifier(config: ml_collections.ConfigDict, settings: loop.LoopSettings,
                     workdir: Workdir, variant: Variant, autoencoder_params: dict,
                     data: fake_pool.StudyData, mesh: Mesh) -> None:
  """Trains (or resumes) the classifier of one variant: its input, its frozen autoencoder."""
  autoencoder, frozen = None, {}
  if variant.autoencoder is not None:
    autoencoder = autoencoder_trainer.autoencoder_of(config.autoencoders[variant.autoencoder])
    frozen = {'autoencoder': autoencoder_params[variant.autoencoder]}
  classifier = classifier_trainer.classifier_of(config.classifier, variant.input_kind,
                                                autoencoder)
  common.train_classifier(
      config, settings, workdir, variant.name, classifier, frozen=frozen,
      metadata={'input': variant.input_kind, 'autoencoder': variant.autoencoder},
      trained_on=config.classifier.train_generators, data=data, mesh=mesh)


def reconstruction_errors(config: ml_collections.ConfigDict, autoencoder_params: dict,
                          data: fake_pool.StudyData) -> dict[str, dict[str, float]]:
  """Mean absolute reconstruction error (in [-1, 1] units) of test reals and fakes."""
  sets = {'seen-class reals': data.reals.test_seen, 'anomaly-class reals': data.reals.test_anomaly,
          **{f'{name} fakes': fakes['test'] for name, fakes in data.fakes.items()}}
  out = {}
  for name, params in autoencoder_params.items():
    autoencoder = autoencoder_trainer.autoencoder_of(config.autoencoders[name])
    out[name] = {set_name: autoencoder_trainer.mean_reconstruction_error(autoencoder, params,
                                                                         images)
                 for set_name, images in sets.items() if len(images)}
  return out


def comparison_rows(config: ml_collections.ConfigDict, reports: dict[str, dict]) -> list[dict]:
  """One row per classifier and split: AP, and accuracy and recalls at the Youden threshold
  (of one seed's reports)."""
  rows = []
  for variant in variants(config):
    result = reports[variant.name]
    depth = (config.autoencoders[variant.autoencoder].depth if variant.autoencoder else None)
    for split_name, split in result['splits'].items():
      values = split['at_threshold'][COMPARISON_THRESHOLD]
      support = split['support']
      rows.append({
          'input': variant.input_kind, 'autoencoder_depth': depth, 'split': split_name,
          'average_precision': split['threshold_free']['average_precision'],
          'accuracy': values['accuracy'],
          'fake_recall': values['generated']['recall'] if support['generated'] else None,
          'real_recall': values['real']['recall'] if support['real'] else None,
          'threshold': result['thresholds'][COMPARISON_THRESHOLD]})
  return rows


def comparison_markdown(rows: list[dict], errors: dict[str, dict[str, float]],
                        config: ml_collections.ConfigDict) -> str:
  fmt = lambda value: intervals.format_value(value, 3)
  trained_on = ', '.join(config.classifier.train_generators)
  lines = ['# Autoencoder-GAN study: classifier input x autoencoder depth x split', '',
           f'AlexNet-style classifiers trained on reals against fakes of: {trained_on}. '
           'AP is threshold-free (a one-class split is paired with its counterpart, as in '
           'the per-classifier reports); accuracy and recalls are at the Youden threshold '
           'chosen on validation.', '', *report.seeds_line(rows),
           '| input | AE depth | split | AP | accuracy | fake recall | real recall |',
           '|---|---|---|---|---|---|---|']
  for row in rows:
    lines.append(f"| {row['input']} | {row['autoencoder_depth'] or '—'} | {row['split']} | "
                 f"{fmt(row['average_precision'])} | {fmt(row['accuracy'])} | "
                 f"{fmt(row['fake_recall'])} | {fmt(row['real_recall'])} |")
  lines += ['', '## Best input per split (by AP)', '']
  for split in dict.fromkeys(row['split'] for row in rows):
    best = max((row for row in rows if row['split'] == split),
               key=lambda row: intervals.mean_of(row['average_precision']))
    depth = f" (AE depth {best['autoencoder_depth']})" if best['autoencoder_depth'] else ''
    lines.append(f"- {split}: {best['input']}{depth}, AP {fmt(best['average_precision'])}")
  if errors:
    set_names = list(dict.fromkeys(name for by_set in errors.values() for name in by_set))
    lines += ['', '## Mean absolute reconstruction error (pixel range [-1, 1])', '',
              '| autoencoder | depth | ' + ' | '.join(set_names) + ' |',
              '|---|---|' + '---|' * len(set_names)]
    for name, by_set in errors.items():
      lines.append(f'| {name} | {config.autoencoders[name].depth} | '
                   + ' | '.join(fmt(by_set.get(s)) for s in set_names) + ' |')
  return '\n'.join(lines) + '\n'


def write_comparison(config: ml_collections.ConfigDict, workdir: Workdir, rows: list[dict],
                     errors: dict[str, dict[str, float]]) -> None:
  if jax.process_index() != 0:
    return
  markdown = comparison_markdown(rows, errors, config)
  (workdir.root / COMPARISON_MD).write_text(markdown)
  (workdir.root / COMPARISON_JSON).write_text(json.dumps(rows, indent=1) + '\n')
  logging.info('Comparison:\n%s', markdown)


def evaluate(config: ml_collections.ConfigDict, workdir: Workdir, which_steps: str, mesh: Mesh,
             data: fake_pool.StudyData | None = None,
             autoencoder_params: dict | None = None) -> dict:
  """Every classifier on every split: reports, and the comparison table."""
  data = common.study_data(config, workdir, mesh, train=None) if data is None else data
  if autoencoder_params is None:
    autoencoder_params = restore_autoencoders(config, workdir, data.reals.train.shape[1:], mesh)
  reports, latest = {}, {seed: {} for seed in common.classifier_seeds(config)}
  for variant in variants(config):
    variant_reports = common.evaluate_named_detector_seeds(config, workdir, variant.name,
                                                           which_steps, data, mesh)
    common.write_reports(workdir.classifier(variant.name), variant.name, variant_reports)
    reports[variant.name] = variant_reports.combined[-1]
    for seed, report_of_seed in variant_reports.latest().items():
      latest[seed][variant.name] = report_of_seed
  # Of several seeds, each figure as its interval over the classifiers' replicas.
  rows = common.across_seeds({seed: comparison_rows(config, seed_reports)
                              for seed, seed_reports in latest.items()})
  write_comparison(config, workdir, rows, reconstruction_errors(config, autoencoder_params, data))
  return {'rows': rows, 'reports': reports}


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Runs the study in `workdir` (resuming what is there); returns the comparison rows."""
  workdir, mesh = common.start(config, workdir)
  settings = loop.LoopSettings.from_config(config)
  with common.timed_stage(workdir, 'data'):
    data = common.study_data(config, workdir, mesh, train=settings)
  with common.timed_stage(workdir, 'training'):
    # Of several seeds, the classifiers train as replicas; the autoencoders once.
    autoencoder_params = train_autoencoders(config.autoencoders, settings.one_seed(), workdir,
                                            data.reals, mesh)
    for variant in variants(config):
      train_classifier(config, settings, workdir, variant, autoencoder_params, data, mesh)
  with common.timed_stage(workdir, 'evaluation'):
    return evaluate(config, workdir, 'latest', mesh, data, autoencoder_params)
