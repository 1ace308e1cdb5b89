"""Dedicated detectors: one classifier per set of training generators, tested on every one.

Classifiers learn reals against the fakes of a set of generators (one, or several
pooled, after Hsu et al. 2018) and are evaluated on each generator's fakes, on the same
splits as the DCGAN discriminators, which join the table: discriminator or dedicated
classifier, and how far each generalises.
"""

import functools
import json
import pathlib

import jax
import matplotlib

matplotlib.use('Agg')  # Files only; no display.
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import logging  # noqa: E402

from jax.sharding import Mesh  # noqa: E402

from fakejax import config as config_lib, fusion  # noqa: E402
from fakejax.data import fake_pool, perturb, pipeline  # noqa: E402
from fakejax.evaluation import assemble, discriminators, intervals, report  # noqa: E402
from fakejax.studies import common  # noqa: E402
from fakejax.train import autoencoder_trainer, classifier_trainer, loop  # noqa: E402
from fakejax.workdir import RunDir, Workdir, gan_workdir  # noqa: E402

GENERALISATION_MD = 'generalisation.md'
GENERALISATION_JSON = 'generalisation.json'
GENERALISATION_PNG = 'generalisation_ap.png'
HELD_OUT_MD, HELD_OUT_JSON = 'leave_one_family_out.md', 'leave_one_family_out.json'
HELD_OUT_PNG = 'leave_one_family_out_ap.png'
# The operating point of the table: Youden's J, chosen on validation.
TABLE_THRESHOLD = 'youden'


def generator_split(name: str) -> str:
  """The config.evals split of generator `name`'s test fakes against all test reals.

  The config check requires one per GAN.
  """
  return f'fakes_{name}'


def classifier_kind(classifier_config: ml_collections.ConfigDict) -> str:
  """How the tables name the study's classifiers: architecture, and input if not the image."""
  input_kind = classifier_config.input
  return classifier_config.architecture + ('' if input_kind == 'image' else f' on {input_kind}')


def table_row(detector: str, kind: str, result: dict, generators) -> dict:
  """AP and fake recall per generator, and real recalls, of one detector's report."""
  splits = result['splits']
  at = lambda split: splits[split]['at_threshold'][TABLE_THRESHOLD]
  return {
      'detector': detector, 'kind': kind, 'trained_on': result['trained_on'],
      'average_precision': {g: splits[generator_split(g)]['threshold_free']['average_precision']
                            for g in generators},
      'fake_recall': {g: at(generator_split(g))['generated']['recall'] for g in generators},
      # Absent (None) where the data has no such reals (a folder has no anomaly classes).
      **{f'{kind}_real_recall': at(f'{kind}_class_reals')['real']['recall']
         if f'{kind}_class_reals' in splits else None for kind in ('seen', 'anomaly')},
      'threshold': result['thresholds'][TABLE_THRESHOLD],
  }


def cell(value) -> str:
  """A table's figure: '0.912', or '0.912 ± 0.031' across seeds, or '-' where absent."""
  return '-' if value is None else intervals.format_value(value, 3)


def table_markdown(rows: list[dict], generators) -> str:
  lines = ['# Generalisation: detectors x generators', '',
           'Each cell: AP of the generator\'s test fakes against all test reals, then fake '
           f'recall at the {TABLE_THRESHOLD} threshold chosen on validation. * marks the '
           'generators a detector trained against.', '', *report.seeds_line(rows),
           '| detector | kind | ' + ' | '.join(generators) +
           ' | seen-class real recall | anomaly-class real recall |',
           '|---|---|' + '---|' * (len(generators) + 2)]
  for row in rows:
    cells = [f"{cell(row['average_precision'][g])} / {cell(row['fake_recall'][g])}"
             + ('*' if g in row['trained_on'] else '') for g in generators]
    recalls = [cell(row[key]) for key in ('seen_real_recall', 'anomaly_real_recall')]
    lines.append(f"| {row['detector']} | {row['kind']} | " + ' | '.join(cells + recalls) + ' |')
  return '\n'.join(lines) + '\n'


def held_out_row(family: str, members, detector: str, report: dict, budget: str) -> dict:
  """How detector `detector`, trained on every other family, does on `family`'s fakes:
  means over its generators; real recalls at the same thresholds."""
  splits = report['splits']
  at = lambda split, threshold: splits[split]['at_threshold'][threshold]
  fakes = [generator_split(g) for g in members]
  row = {'family': family, 'generators': list(members), 'detector': detector,
         'average_precision': float(np.mean(
             [splits[s]['threshold_free']['average_precision'] for s in fakes]))}
  for label, threshold in (('validation', TABLE_THRESHOLD), ('budget', budget)):
    row[f'fake_recall_{label}'] = float(np.mean([at(s, threshold)['generated']['recall']
                                                 for s in fakes]))
    for kind in ('seen', 'anomaly'):
      split = f'{kind}_class_reals'
      row[f'{kind}_real_recall_{label}'] = (at(split, threshold)['real']['recall']
                                            if split in splits else None)
  for split in perturbed_real_splits(report):  # At the budget: the marketplace's threshold.
    row[f'{split}_real_recall_budget'] = at(split, budget)['real']['recall']
  for threshold in report['thresholds']:  # The other budgets' fakes caught.
    if threshold.startswith('review_budget_') and threshold != budget:
      row[f'fake_recall_{threshold}'] = float(np.mean([at(s, threshold)['generated']['recall']
                                                       for s in fakes]))
  return row


def perturbed_real_splits(report: dict) -> list[str]:
  """The splits of a report that hold perturbed reals only (e.g. JPEG-compressed)."""
  return [name for name, split in report['splits'].items()
          if perturb.split_source(split['reals'])[1] and not split['fakes']]


HELD_OUT_COLUMNS = ('average_precision', 'fake_recall_validation', 'seen_real_recall_validation',
                    'anomaly_real_recall_validation', 'fake_recall_budget',
                    'seen_real_recall_budget', 'anomaly_real_recall_budget')


def held_out_columns(rows: list[dict]) -> list[str]:
  """HELD_OUT_COLUMNS, then the real recall of each perturbed-reals split at the budget."""
  return [*HELD_OUT_COLUMNS, *(key for key in rows[0] if key.endswith('_real_recall_budget')
                               and key not in HELD_OUT_COLUMNS)]


def held_out_summary(rows: list[dict]) -> list[dict]:
  """The mean and the worst held-out family of each column (None where none has a value)."""
  out = []
  for label, reduce in (('mean', np.mean), ('worst', np.min)):
    values = {c: [row[c] for row in rows if row[c] is not None] for c in held_out_columns(rows)}
    out.append({'family': label, **{c: float(reduce(v)) if v else None
                                    for c, v in values.items()}})
  return out


def held_out_markdown(rows: list[dict], summary: list[dict], budget: str) -> str:
  """The leave-one-family-out table, with the mean and the worst family (`summary`)."""
  columns = held_out_columns(rows)
  perturbed = [c[:-len('_real_recall_budget')] for c in columns[len(HELD_OUT_COLUMNS):]]
  lines = ['# Leave one family out', '',
           'Each row: a classifier trained on the fakes of every other family, tested on this '
           f"family's fakes (means over its generators) against all test reals. Thresholds "
           f'chosen on validation: {TABLE_THRESHOLD}, and {budget} (at most that share of '
           'validation reals flagged), at which the perturbed reals\' recall is given too. '
           'Mean and worst are over the families (of each seed, then across seeds).', '',
           *report.seeds_line(rows),
           f'| held-out family | detector | AP | fake recall ({TABLE_THRESHOLD}) | seen real '
           f'recall | anomaly real recall | fake recall ({budget}) | seen real recall | '
           'anomaly real recall | ' + ''.join(f'{name} real recall | ' for name in perturbed),
           '|---|---|' + '---|' * len(columns)]
  for row in rows:
    lines.append(f"| {row['family']} | {row['detector']} | "
                 + ' | '.join(cell(row[c]) for c in columns) + ' |')
  for row in summary:
    lines.append(f"| **{row['family']}** | | " + ' | '.join(cell(row[c]) for c in columns) + ' |')
  return '\n'.join(lines) + '\n'


def write_held_out_table(config: ml_collections.ConfigDict, workdir: Workdir,
                         latest: dict[int, dict[str, dict]], rows: list[dict],
                         generators) -> None:
  """The leave-one-family-out table (JSON, Markdown) and its AP heatmap (process 0), from
  each seed's latest classifier reports (`latest[seed][classifier]`)."""
  if not config.families or jax.process_index() != 0:
    return
  budget = assemble.budget_threshold(config.evaluation)
  sets = config_lib.held_out_sets(config)
  by_seed = {seed: [held_out_row(family, members, sets[family], reports[sets[family]], budget)
                    for family, members in config.families.items()]
             for seed, reports in latest.items()}
  held_out = common.across_seeds(by_seed)
  summary = common.across_seeds({seed: held_out_summary(r) for seed, r in by_seed.items()})
  markdown = held_out_markdown(held_out, summary, budget)
  (workdir.root / HELD_OUT_MD).write_text(markdown)
  (workdir.root / HELD_OUT_JSON).write_text(
      json.dumps({'families': held_out, 'summary': summary}, indent=1) + '\n')
  by_detector = {row['detector']: row for row in rows}
  plot_heatmap([{**by_detector[sets[f]], 'detector': f'without {f}', 'outlined': members}
                for f, members in config.families.items()], generators,
               workdir.root / HELD_OUT_PNG)
  logging.info('Leave one family out:\n%s', markdown)


def plot_heatmap(rows: list[dict], generators, path: pathlib.Path) -> None:
  """AP per detector (row) and generator (column); a row's `outlined` generators boxed."""
  values = np.array([[intervals.mean_of(row['average_precision'][g]) for g in generators]
                     for row in rows])
  fig, ax = plt.subplots(figsize=(2 + 1.2 * len(generators), 1 + 0.5 * len(rows)))
  ax.imshow(values, cmap='viridis', vmin=0.0, vmax=1.0, aspect='auto')
  for (i, j), value in np.ndenumerate(values):
    ax.text(j, i, f'{value:.2f}', ha='center', va='center',
            color='black' if value > 0.6 else 'white')
    if generators[j] in rows[i].get('outlined', ()):
      ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor='red',
                                 linewidth=2))
  ax.set_xticks(range(len(generators)), generators, rotation=30, ha='right')
  ax.set_yticks(range(len(rows)), [row['detector'] for row in rows])
  ax.set_xlabel('fakes of')
  ax.set_title('AP against all test reals')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _autoencoder_source(ae_config: ml_collections.ConfigDict, params: dict, step: int,
                        reals: pipeline.StudySplits, num_train: int,
                        num_eval: int) -> fake_pool.FakeSource:
  autoencoder = autoencoder_trainer.autoencoder_of(ae_config)
  reconstruct = functools.partial(autoencoder_trainer.reconstruct, autoencoder, params)
  return fake_pool.FakeSource(
      description={'autoencoder': ae_config.to_dict(), 'checkpoint_step': step},
      draw=lambda: fake_pool.reconstruction_fakes(reconstruct, reals, num_train, num_eval))


def autoencoder_sources(config: ml_collections.ConfigDict, workdir: Workdir, mesh: Mesh,
                        train: loop.LoopSettings | None) -> common.MoreSources:
  """The autoencoder-GANs of config.autoencoder_generators as generators of the study.

  Each is trained on the training reals (or resumed; without `train` settings, restored)
  in the workdir; its fakes are its reconstructions of training, validation and seen-class
  test reals.
  """
  def sources(reals: pipeline.StudySplits, num_train: int) -> dict[str, fake_pool.FakeSource]:
    out = {}
    for name, ae_config in config.autoencoder_generators.items():
      run = workdir.autoencoder(name)
      if train is not None:
        params = autoencoder_trainer.train_autoencoder(
            name, ae_config, train.for_model(ae_config), reals.train,
            reals.validation[:autoencoder_trainer.NUM_IMAGES_IN_GRID], run, mesh)
        step = run.steps()[-1]
      else:
        params, step = autoencoder_trainer.restore_autoencoder(
            name, ae_config, reals.train.shape[1:], run, mesh)
      out[name] = _autoencoder_source(ae_config, params, step, reals, num_train,
                                      config.evaluation.num_fake_samples)
    return out

  return sources


def write_table(workdir: Workdir, rows: list[dict], generators) -> None:
  if jax.process_index() != 0:
    return
  markdown = table_markdown(rows, generators)
  (workdir.root / GENERALISATION_MD).write_text(markdown)
  (workdir.root / GENERALISATION_JSON).write_text(json.dumps(rows, indent=1) + '\n')
  plot_heatmap(rows, generators, workdir.root / GENERALISATION_PNG)
  logging.info('Generalisation:\n%s', markdown)


def detector_runs(config: ml_collections.ConfigDict,
                  workdir: Workdir) -> dict[str, tuple[RunDir, str]]:
  """The study's own detectors, in table order: its classifiers, real-only detectors (no
  fakes: every generator unseen) and fusions; each with its run and how tables name it."""
  return {**{name: (workdir.classifier(name), classifier_kind(config.classifier))
             for name in config.train_sets},
          **{name: (workdir.real_only(name), f'{model.architecture}, reals only')
             for name, model in config.real_only.items()},
          **{name: (workdir.fusion(name), 'fusion') for name in config.fusions}}


def evaluate(config: ml_collections.ConfigDict, workdir: Workdir, which_steps: str, mesh: Mesh,
             data: fake_pool.StudyData | None = None) -> dict:
  """Every classifier and discriminator on every generator: reports and the table (of
  several seeds, each figure as its interval over the classifiers' replicas)."""
  if data is None:
    data = common.study_data(config, workdir, mesh, train=None,
                             more_sources=autoencoder_sources(config, workdir, mesh, None))
  generators = list(data.fakes)  # Each GAN, generator and autoencoder, or the folder's fakes.
  latest = {seed: {} for seed in common.classifier_seeds(config)}
  kinds = {}
  for name, (run, kind) in detector_runs(config, workdir).items():
    reports = common.evaluate_named_detector_seeds(config, workdir, name, which_steps, data, mesh)
    common.write_reports(run, name, reports)
    for seed, report_of_seed in reports.latest().items():
      latest[seed][name] = report_of_seed
    kinds[name] = kind
  rows = common.across_seeds({
      seed: [table_row(name, kinds[name], reports[name], generators) for name in kinds]
      for seed, reports in latest.items()})
  # The discriminators of the same GANs, on the same splits.
  not_gans = {name: fakes['test'] for name, fakes in data.fakes.items() if name not in config.gans}
  gan_reports = discriminators.evaluate_discriminators(
      config.gans, gan_workdir(workdir, config.gan_workdir), which_steps, reals=data.reals,
      settings=common.eval_settings(config), seed=config.seed, mesh=mesh, other_fakes=not_gans)
  for name, reports in gan_reports.items():
    # Thresholds on this study's validation, for `predict --detector=D:<gan>` here.
    common.write_reports(workdir.discriminator_reports(name), f'D:{name}', reports)
    rows.append(table_row(f'D of {name}', 'discriminator', reports[-1], generators))
  write_table(workdir, rows, generators)
  write_held_out_table(config, workdir, latest, rows, generators)
  return {'rows': rows}


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Runs the study in `workdir` (resuming what is there); returns the table rows."""
  workdir, mesh = common.start(config, workdir)
  settings = loop.LoopSettings.from_config(config)
  with common.timed_stage(workdir, 'data'):  # The fake pool, with the autoencoders' fakes.
    data = common.study_data(config, workdir, mesh, train=settings,
                             more_sources=autoencoder_sources(config, workdir, mesh,
                                                              settings.one_seed()))
  with common.timed_stage(workdir, 'training'):
    train_detectors(config, settings, workdir, data, mesh)
  with common.timed_stage(workdir, 'evaluation'):
    return evaluate(config, workdir, 'latest', mesh, data)


def train_detectors(config: ml_collections.ConfigDict, settings: loop.LoopSettings,
                    workdir: Workdir, data: fake_pool.StudyData, mesh: Mesh) -> None:
  """Trains (or resumes) the classifiers and real-only detectors, then fits the fusions."""
  input_kind = config.classifier.input
  # Restored with its input by `fakejax.detectors`; raw images need no record (as before).
  metadata = {} if input_kind == 'image' else {'input': input_kind}
  for name, trained_on in config.train_sets.items():  # Of several seeds, as replicas.
    classifier = classifier_trainer.classifier_of(config.classifier, input_kind)
    common.train_classifier(config, settings, workdir, name, classifier, frozen={},
                            metadata=metadata, trained_on=trained_on, data=data, mesh=mesh)
  for name in config.real_only:
    common.train_real_only(config, settings, workdir, name, data, mesh)
  for name in config.fusions:  # After their members: fitted on their scores.
    fitted = common.fit_fusion(config, workdir, name, data, mesh)
    if jax.process_index() == 0:
      fitted.write(workdir.fusion(name).path / fusion.FUSION_JSON)
