"""Evaluation reports: JSON (every number), Markdown tables, TensorBoard scalars, PNG plots."""

import json
import math
import pathlib

import matplotlib

matplotlib.use('Agg')  # Files only; no display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fakejax.evaluation import metrics, study  # noqa: E402
from fakejax.workdir import RunDir  # noqa: E402

REPORT_JSON = 'report.json'
REPORT_MD = 'report.md'
DEFAULT_THRESHOLD = 'default_0.5'
ROWS = ('generated', 'real', 'accuracy', 'macro avg', 'weighted avg')


def _fmt(value, digits: int = 2) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return '—'
  return f'{value:.{digits}f}' if isinstance(value, float) else str(value)


def classification_table(values: dict) -> list[str]:
  """One threshold's results in the layout of scikit-learn's classification_report."""
  lines = ['| | precision | recall | F1 | support |', '|---|---|---|---|---|']
  for row in ROWS:
    if row == 'accuracy':
      lines.append(f"| accuracy | | | {_fmt(values['accuracy'])} | "
                   f"{int(values['macro avg']['support'])} |")
      continue
    v = values[row]
    lines.append(f"| {row} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | "
                 f"{int(v['support'])} |")
  return lines


def gan_markdown(report: dict) -> str:
  """The full report of one checkpoint as Markdown."""
  lines = [f"# {report['detector']} ({report['architecture']}), step {report['step']}", '',
           'Positive class: generated. Thresholds apply to the fake probability 1 - D(x); '
           'they are chosen on the validation split (held-out seen-class reals and fresh '
           'own fakes), never on test.', '',
           '## Operating points', '',
           '| threshold | value | review load (real test uploads flagged) | own fakes caught |',
           '|---|---|---|---|']
  for name, point in report['operating_points'].items():
    lines.append(f"| {name} | {_fmt(point['threshold'], 3)} | {_fmt(point['review_load'], 3)} | "
                 f"{_fmt(point['fake_recall'], 3)} |")
  for split_name, split in report['splits'].items():
    support = split['support']
    lines += ['', f'## {split_name}', '',
              f"Reals: {split['reals'] or 'none'} ({support['real']}); "
              f"fakes: {split['fakes'] or 'none'} ({support['generated']})."]
    free = split['threshold_free']
    paired = f" (paired with {split['paired_with']})" if split['paired_with'] else ''
    lines += [f"ROC-AUC {_fmt(free['roc_auc'], 3)}, AP {_fmt(free['average_precision'], 3)}, "
              f"EER {_fmt(free['eer'], 3)}{paired}.", '']
    for name, values in split['at_threshold'].items():
      lines += [f"Threshold {name} ({_fmt(report['thresholds'][name], 3)}):", '',
                *classification_table(values), '']
  return '\n'.join(lines) + '\n'


def _study_value(which: str, split: str, row: str, metric: str):
  values = study.STUDY[which].get(split, {})
  if row == 'accuracy':
    return values.get('accuracy')
  return values.get(row, {}).get(metric)


SUMMARY_ROWS = (
    ('own_fakes_vs_reals', 'accuracy', 'accuracy'),
    ('own_fakes_vs_reals', 'generated', 'precision'),
    ('own_fakes_vs_reals', 'generated', 'recall'),
    ('own_fakes_vs_reals', 'generated', 'f1'),
    ('own_fakes_vs_reals', 'real', 'precision'),
    ('own_fakes_vs_reals', 'real', 'recall'),
    ('own_fakes_vs_reals', 'real', 'f1'),
    ('own_fakes_vs_reals', 'macro avg', 'f1'),
    ('anomaly_class_reals', 'real', 'recall'),
    ('seen_class_reals', 'real', 'recall'),
    ('other_gan_fakes', 'generated', 'recall'),
)


def summary_markdown(reports_by_gan: dict[str, dict], training_seconds: dict[str, float] | None) -> str:
  """Our latest figures for every GAN beside the study's, at threshold 0.5, and review loads."""
  gans = sorted(reports_by_gan)
  lines = ['# Discriminators as fake detectors: ours beside the study', '',
           'Threshold 0.5 on the fake probability. The study used larger real splits from '
           'the train set; ours are the Fashion-MNIST test split.', '',
           '| split | metric | study (better DCGAN) | study (weaker DCGAN) | '
           + ' | '.join(f"{g} (step {reports_by_gan[g]['step']})" for g in gans) + ' |',
           '|---|---|---|---|' + '---|' * len(gans)]
  for split, row, metric in SUMMARY_ROWS:
    ours = []
    for gan in gans:
      split_report = reports_by_gan[gan]['splits'].get(split)
      if split_report is None:
        ours.append('—')
        continue
      values = split_report['at_threshold'][DEFAULT_THRESHOLD]
      ours.append(_fmt(values['accuracy'] if row == 'accuracy' else values[row][metric]))
    label = 'accuracy' if row == 'accuracy' else f'{row} {metric}'
    lines.append(f'| {split} | {label} | {_fmt(_study_value("better", split, row, metric))} | '
                 f'{_fmt(_study_value("weaker", split, row, metric))} | ' + ' | '.join(ours) + ' |')
  lines += ['', '| split | metric | ' + ' | '.join(gans) + ' |', '|---|---|' + '---|' * len(gans)]
  for split in reports_by_gan[gans[0]]['splits']:
    for metric in ('roc_auc', 'average_precision', 'eer'):
      cells = [_fmt(reports_by_gan[g]['splits'][split]['threshold_free'][metric], 3)
               for g in gans]
      lines.append(f'| {split} | {metric} | ' + ' | '.join(cells) + ' |')
  lines += ['', '## Operating points (chosen on validation; measured on test)', '',
            '| GAN | threshold | value | review load | own fakes caught |', '|---|---|---|---|---|']
  for gan in gans:
    for name, point in reports_by_gan[gan]['operating_points'].items():
      lines.append(f"| {gan} | {name} | {_fmt(point['threshold'], 3)} | "
                   f"{_fmt(point['review_load'], 3)} | {_fmt(point['fake_recall'], 3)} |")
  if training_seconds:
    lines += ['', '## Training time', '', '| GAN | wall time of training (this run) |', '|---|---|']
    lines += [f'| {gan} | {seconds / 60:.1f} min |' for gan, seconds in sorted(training_seconds.items())]
  return '\n'.join(lines) + '\n'


def _save(fig, path: pathlib.Path) -> None:
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_confusion_matrices(report: dict, path: pathlib.Path) -> None:
  splits = report['splits']
  fig, axes = plt.subplots(1, len(splits), figsize=(3.2 * len(splits), 3.2), squeeze=False)
  for ax, (name, split) in zip(axes[0], splits.items()):
    matrix = np.asarray(split['at_threshold'][DEFAULT_THRESHOLD]['confusion_matrix'])
    ax.imshow(matrix, cmap='Blues')
    for (i, j), count in np.ndenumerate(matrix):
      ax.text(j, i, str(count), ha='center', va='center')
    ax.set_xticks([0, 1], ['called gen.', 'called real'])
    ax.set_yticks([0, 1], ['generated', 'real'])
    ax.set_title(name, fontsize=9)
  _save(fig, path)


def plot_roc_curves(report: dict, path: pathlib.Path) -> None:
  fig, ax = plt.subplots(figsize=(5, 5))
  grid = np.linspace(0, 1, metrics.ROC_GRID_SIZE)
  for name, split in report['splits'].items():
    free = split['threshold_free']
    ax.plot(grid, free['roc_curve_tpr'], label=f"{name} (AUC {free['roc_auc']:.3f})")
  ax.plot([0, 1], [0, 1], 'k:', linewidth=0.8)
  ax.set_xlabel('false positive rate (reals flagged)')
  ax.set_ylabel('true positive rate (fakes caught)')
  ax.legend(fontsize=7, loc='lower right')
  _save(fig, path)


def plot_histograms(report: dict, path: pathlib.Path) -> None:
  splits = report['splits']
  fig, axes = plt.subplots(1, len(splits), figsize=(3.2 * len(splits), 2.8), squeeze=False)
  for ax, (name, split) in zip(axes[0], splits.items()):
    hist = split['histogram']
    edges = np.linspace(0, 1, hist['bins'] + 1)
    for kind, colour in (('real', 'tab:blue'), ('generated', 'tab:red')):
      if sum(hist[kind]):
        ax.stairs(hist[kind], edges, color=colour, label=kind)
    ax.set_xlabel('fake probability')
    ax.set_title(name, fontsize=9)
    ax.legend(fontsize=7)
  _save(fig, path)


def plot_mistakes(mistakes: dict, path: pathlib.Path) -> None:
  fig, axes = plt.subplots(len(mistakes), 8, figsize=(8, 1.3 * len(mistakes) + 0.4),
                           squeeze=False)
  for row, (kind, (images, fake_prob)) in zip(axes, mistakes.items()):
    for index, (ax, image, p) in enumerate(zip(row, images, fake_prob)):
      ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap='gray', vmin=0, vmax=255)
      heading = f'{kind.replace("_", " ")}: ' if index == 0 else ''
      ax.set_title(f'{heading}{p:.2f}', fontsize=7, loc='left' if index == 0 else 'center')
    for ax in row:
      ax.axis('off')
  _save(fig, path)


def write_checkpoint_report(run: RunDir, report: dict, writer=None) -> pathlib.Path:
  """Writes report.json, report.md and the plots of one checkpoint; returns their folder."""
  out = run.eval_dir(report['step'])
  out.mkdir(parents=True, exist_ok=True)
  report = dict(report)
  mistakes = report.pop('mistakes', None)
  (out / REPORT_JSON).write_text(json.dumps(report, indent=1) + '\n')
  (out / REPORT_MD).write_text(gan_markdown(report))
  plot_confusion_matrices(report, out / 'confusion_matrices.png')
  plot_roc_curves(report, out / 'roc_curves.png')
  plot_histograms(report, out / 'score_histograms.png')
  if mistakes:
    plot_mistakes(mistakes, out / 'most_confident_mistakes.png')
  if writer is not None:
    writer.write_scalars(report['step'], tensorboard_scalars(report))
    writer.flush()
  return out


def tensorboard_scalars(report: dict) -> dict[str, float]:
  scalars = {}
  for name, split in report['splits'].items():
    values = split['at_threshold'][DEFAULT_THRESHOLD]
    scalars[f'eval/{name}/accuracy'] = values['accuracy']
    for cls in ('generated', 'real'):
      if values[cls]['support']:
        scalars[f'eval/{name}/{cls}_recall'] = values[cls]['recall']
    for metric in ('roc_auc', 'average_precision', 'eer'):
      scalars[f'eval/{name}/{metric}'] = split['threshold_free'][metric]
  for name, point in report['operating_points'].items():
    scalars[f'eval/review_load/{name}'] = point['review_load']
  return {k: v for k, v in scalars.items() if not math.isnan(v)}
