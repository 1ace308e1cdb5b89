"""Dedicated detectors: one classifier per set of training generators, tested on every one.

Classifiers learn reals against the fakes of a set of generators (one, or several
pooled, after Hsu et al. 2018) and are evaluated on each generator's fakes, on the same
splits as the DCGAN discriminators, which join the table: discriminator or dedicated
classifier, and how far each generalises.
"""

import json
import pathlib

import jax
import matplotlib

matplotlib.use('Agg')  # Files only; no display.
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import logging  # noqa: E402

from fakejax import autogan, classifier_runs  # noqa: E402
from fakejax.evaluation import evaluator, report  # noqa: E402
from fakejax.train import loop  # noqa: E402

GENERALISATION_MD = 'generalisation.md'
GENERALISATION_JSON = 'generalisation.json'
GENERALISATION_PNG = 'generalisation_ap.png'
# The operating point of the table: Youden's J, chosen on validation.
TABLE_THRESHOLD = 'youden'


def generator_split(name: str) -> str:
  """The config.evals split of generator `name`'s test fakes against all test reals.

  The config check requires one per GAN.
  """
  return f'fakes_{name}'


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


def table_markdown(rows: list[dict], generators) -> str:
  lines = ['# Generalisation: detectors x generators', '',
           'Each cell: AP of the generator\'s test fakes against all test reals, then fake '
           f'recall at the {TABLE_THRESHOLD} threshold chosen on validation. * marks the '
           'generators a detector trained against.', '',
           '| detector | kind | ' + ' | '.join(generators) +
           ' | seen-class real recall | anomaly-class real recall |',
           '|---|---|' + '---|' * (len(generators) + 2)]
  for row in rows:
    cells = [f"{row['average_precision'][g]:.3f} / {row['fake_recall'][g]:.3f}"
             + ('*' if g in row['trained_on'] else '') for g in generators]
    recalls = ['-' if row[key] is None else f'{row[key]:.3f}'
               for key in ('seen_real_recall', 'anomaly_real_recall')]
    lines.append(f"| {row['detector']} | {row['kind']} | " + ' | '.join(cells + recalls) + ' |')
  return '\n'.join(lines) + '\n'


def plot_heatmap(rows: list[dict], generators, path: pathlib.Path) -> None:
  values = np.array([[row['average_precision'][g] for g in generators] for row in rows])
  fig, ax = plt.subplots(figsize=(2 + 1.6 * len(generators), 1 + 0.5 * len(rows)))
  ax.imshow(values, cmap='viridis', vmin=0.0, vmax=1.0)
  for (i, j), value in np.ndenumerate(values):
    ax.text(j, i, f'{value:.2f}', ha='center', va='center',
            color='black' if value > 0.6 else 'white')
  ax.set_xticks(range(len(generators)), generators, rotation=30, ha='right')
  ax.set_yticks(range(len(rows)), [row['detector'] for row in rows])
  ax.set_xlabel('fakes of')
  ax.set_title('AP against all test reals')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def autoencoder_sources(config: ml_collections.ConfigDict,
                        workdir: pathlib.Path) -> classifier_runs.MoreSources:
  """The autoencoder-GANs of config.autoencoder_generators as generators of the study.

  Each is trained on the training reals (or resumed) in `<workdir>/autoencoders/<name>`;
  its fakes are its reconstructions of training, validation and seen-class test reals.
  """
  def sources(reals, num_train: int, mesh) -> dict[str, classifier_runs.FakeSource]:
    out = {}
    for name, ae_config in config.autoencoder_generators.items():
      settings = loop.LoopSettings.from_config(config, batch_size=ae_config.batch_size,
                                               num_epochs=ae_config.num_epochs)
      job = autogan.autoencoder_job(config, name, ae_config,
                                    reals.validation[:autogan.NUM_IMAGES_IN_GRID], mesh)
      result = loop.train(job, settings, reals.train, workdir / 'autoencoders' / name, mesh)
      model, params = autogan.build_autoencoder(ae_config), result.state.g_params
      num = config.evaluation.num_fake_samples
      out[name] = classifier_runs.FakeSource(
          description={'autoencoder': ae_config.to_dict(), 'checkpoint_step': result.num_steps},
          draw=lambda model=model, params=params: {
              'train': autogan.reconstruct(model, params, reals.train[:num_train]),
              'validation': autogan.reconstruct(model, params, reals.validation[:num]),
              'test': autogan.reconstruct(model, params, reals.test_seen[:num])})
    return out

  return sources


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the study in `workdir` (resuming what is there); returns the table rows."""
  workdir, mesh, data = classifier_runs.start_study(
      config, workdir, autoencoder_sources(config, pathlib.Path(workdir)))
  image_shape = data.reals.train.shape[1:]
  settings = loop.LoopSettings.from_config(config, batch_size=config.classifier.batch_size,
                                           num_epochs=config.classifier.num_epochs)
  generators = list(data.fakes)  # Each GAN, or the folder's fakes.
  rows = []
  for name, trained_on in config.train_sets.items():
    model = classifier_runs.classifier(
        config, name, image_shape, metadata={'trained_on': list(trained_on)},
        validation=classifier_runs.validation_set(data, trained_on), mesh=mesh)
    run_dir = workdir / 'classifiers' / name
    result = loop.train(model.job, settings,
                        classifier_runs.train_set(config, data, list(trained_on)), run_dir, mesh)
    detector = evaluator.Detector(name=name, architecture=config.classifier.architecture,
                                  steps=[result.num_steps], trained_on=tuple(trained_on))
    result_report = classifier_runs.evaluate(config, detector, model, result.state, data, mesh)
    if jax.process_index() == 0:
      report.write_checkpoint_report(run_dir, result_report, loop.make_writer(run_dir / 'tensorboard'))
    rows.append(table_row(name, config.classifier.architecture, result_report, generators))
  # The discriminators of the same GANs, on the same splits.
  gan_dir = pathlib.Path(config.gan_workdir) if config.gan_workdir else workdir
  not_gans = {name: fakes['test'] for name, fakes in data.fakes.items() if name not in config.gans}
  for name, gan_reports in evaluator.evaluate_workdir(config, gan_dir, 'latest', mesh=mesh,
                                                      splits=data.reals,
                                                      other_fakes=not_gans).items():
    rows.append(table_row(f'D of {name}', 'discriminator', gan_reports[-1], generators))
  if jax.process_index() == 0:
    markdown = table_markdown(rows, generators)
    (workdir / GENERALISATION_MD).write_text(markdown)
    (workdir / GENERALISATION_JSON).write_text(json.dumps(rows, indent=1) + '\n')
    plot_heatmap(rows, generators, workdir / GENERALISATION_PNG)
    logging.info('Generalisation:\n%s', markdown)
  return {'rows': rows}
