"""Evaluation reports: JSON (every number), Markdown tables, TensorBoard scalars, PNG plots."""

import json
import math
import pathlib

import matplotlib

matplotlib.use('Agg')  # Files only; no display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fakejax.evaluation import intervals, metrics, study  # noqa: E402
from fakejax.train import loop  # noqa: E402
from fakejax.workdir import RunDir  # noqa: E402

REPORT_JSON = 'report.json'
REPORT_MD = 'report.md'
DEFAULT_THRESHOLD = 'default_0.5'
ROWS = ('generated', 'real', 'accuracy', 'macro avg', 'weighted avg')


def _fmt(value, digits: int = 2) -> str:
  return intervals.format_value(value, digits)


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


def seeds_line(reports) -> list[str]:
  """The line saying which seeds a table's intervals span, if its reports have several."""
  seeds = next((r['seeds'] for r in reports if 'seeds' in r), None)
  return [f"Seeds {seeds}: {intervals.INTERVAL}.", ''] if seeds else []


def summary_markdown(reports_by_gan: dict[str, dict], training_seconds: dict[str, float] | None) -> str:
  """Our latest figures for every GAN beside the study's, at threshold 0.5, and review loads."""
  gans = sorted(reports_by_gan)
  lines = ['# Discriminators as fake detectors: ours beside the study', '',
           'Threshold 0.5 on the fake probability. The study used larger real splits from '
           'the train set; ours are the Fashion-MNIST test split.', '',
           *seeds_line(reports_by_gan.values()),
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
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _row_of_axes(count: int, width: float, height: float, left: float = 0.45):
  """A figure of `count` axes side by side, each `width` x `height` inches with its margins.
  Fixed margins rather than tight_layout, which costs a draw of every axes."""
  fig, axes = plt.subplots(1, count, figsize=(width * count, height), squeeze=False)
  total = width * count
  fig.subplots_adjust(left=left / total, right=1 - 0.1 / total, bottom=0.5 / height,
                      top=1 - 0.3 / height, wspace=(left + 0.1) / (width - left - 0.1))
  return fig, axes[0]


def plot_confusion_matrices(report: dict, path: pathlib.Path) -> None:
  splits = report['splits']
  fig, axes = _row_of_axes(len(splits), 3.2, 3.2, left=1.0)
  for ax, (name, split) in zip(axes, splits.items()):
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
  fig.subplots_adjust(left=0.14, right=0.97, bottom=0.11, top=0.97)
  _save(fig, path)


def plot_histograms(report: dict, path: pathlib.Path) -> None:
  splits = report['splits']
  fig, axes = _row_of_axes(len(splits), 3.2, 2.8)
  for ax, (name, split) in zip(axes, splits.items()):
    hist = split['histogram']
    edges = np.linspace(0, 1, hist['bins'] + 1)
    for kind, colour in (('real', 'tab:blue'), ('generated', 'tab:red')):
      if sum(hist[kind]):
        ax.stairs(hist[kind], edges, color=colour, label=kind)
    ax.set_xlabel('fake probability')
    ax.set_title(name, fontsize=9)
  handles = [plt.Line2D([], [], color=c) for c in ('tab:blue', 'tab:red')]
  axes[0].legend(handles, ['real', 'generated'], fontsize=7, loc='upper left')  # One for all.
  _save(fig, path)


def image_mosaic(images: np.ndarray, columns: int, gap: int, band: int) -> np.ndarray:
  """[N, H, W, C] uint8 -> one RGB image on white: `columns` per row, `gap` pixels between
  tiles and a `band` of pixels above each row for captions."""
  n, h, w, channels = images.shape
  rgb = np.broadcast_to(images, (n, h, w, 3)) if channels == 1 else images[..., :3]
  framed = np.pad(rgb, ((0, 0), (band, 0), (0, gap), (0, 0)), constant_values=255)
  return loop.image_grid(framed, columns, fill=255)[:, :columns * (w + gap) - gap]


def plot_captioned_images(images: np.ndarray, captions: list[str], path: pathlib.Path,
                          title: str = '', columns: int = 8) -> None:
  """Images in rows of `columns`, each with its caption above, drawn as one picture: an
  axes per image would cost matplotlib ~60 ms each."""
  h, w = images.shape[1:3]
  gap, band = max(1, w // 10), h // 2
  rows = max(1, -(-len(images) // columns))
  fig = plt.figure(figsize=(columns * 1.0, rows * 1.25 + 0.3 * bool(title)))
  ax = fig.add_axes((0, 0, 1, 0.92 if title else 1))
  ax.imshow(image_mosaic(images, columns, gap, band), interpolation='nearest')
  for index, caption in enumerate(captions):
    x = (index % columns) * (w + gap) + w / 2
    ax.text(x, (index // columns) * (h + band) + band - 1, caption, fontsize=6,
            ha='center', va='bottom')
  ax.axis('off')
  if title:
    fig.suptitle(title, fontsize=8)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_mistakes(mistakes: dict, path: pathlib.Path) -> None:
  rows = [(kind.replace('_', ' '), images, fake_prob)
          for kind, (images, fake_prob) in mistakes.items() if len(images)]
  if not rows:
    return
  columns = max(len(row_images) for _, row_images, _ in rows)
  padded, captions = [], []
  for kind, row_images, fake_prob in rows:  # One row per kind, padded with white.
    blank = np.full_like(row_images[0], 255)
    padded += [*row_images, *[blank] * (columns - len(row_images))]
    captions += [f'{p:.2f}' for p in fake_prob] + [''] * (columns - len(row_images))
  title = ' / '.join(f'row {i + 1}: {kind}' for i, (kind, _, _) in enumerate(rows))
  plot_captioned_images(np.stack(padded), captions, path, title=title, columns=columns)


def _write_report(out: pathlib.Path, report: dict, markdown: str, writer) -> None:
  """report.json and report.md into `out`, and the report's scalars to `writer` if any."""
  out.mkdir(parents=True, exist_ok=True)
  (out / REPORT_JSON).write_text(json.dumps(report, indent=1) + '\n')
  (out / REPORT_MD).write_text(markdown)
  if writer is not None:
    writer.write_scalars(report['step'], tensorboard_scalars(report))
    writer.flush()


def write_checkpoint_report(run: RunDir, report: dict, writer=None,
                            out: pathlib.Path | None = None) -> pathlib.Path:
  """Writes report.json, report.md and the plots of one checkpoint (into `out`, default its
  step's folder); returns their folder."""
  out = run.eval_dir(report['step']) if out is None else out
  report = dict(report)
  mistakes = report.pop('mistakes', None)
  _write_report(out, report, gan_markdown(report), writer)
  plot_confusion_matrices(report, out / 'confusion_matrices.png')
  plot_roc_curves(report, out / 'roc_curves.png')
  plot_histograms(report, out / 'score_histograms.png')
  if mistakes:
    plot_mistakes(mistakes, out / 'most_confident_mistakes.png')
  return out


def write_seeds_report(run: RunDir, report: dict, writer, reports_by_seed: dict[int, dict]
                       ) -> pathlib.Path:
  """One checkpoint of several seeds: each seed's report and plots in `seed_<seed>/`, and
  their combination (intervals) as report.json and report.md; returns the folder."""
  out = run.eval_dir(report['step'])
  for seed, seed_report in reports_by_seed.items():
    write_checkpoint_report(run, seed_report, out=run.eval_dir(report['step'], seed))
  _write_report(out, report, '\n'.join([*seeds_line([report]), gan_markdown(report)]), writer)
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
  # Of several seeds, the means.
  scalars = {k: intervals.mean_of(v) for k, v in scalars.items()}
  return {k: v for k, v in scalars.items() if not math.isnan(v)}
