r"""Key detector figures of several study workdirs side by side (seeds, dtypes, configs).

  python tools/compare_runs.py runs/seed1 runs/seed2 runs/seed1_bf16 \
      --labels='seed 1,seed 2,seed 1 bfloat16'

Reads the latest evaluation of every detector in each workdir (a DCGAN study's
discriminators, `<workdir>/<gan>/eval/<step>/report.json`, and a classifier study's
classifiers, `<workdir>/classifiers/<name>/eval/...`, as fakejax.main and fakejax.evaluate
write them) and prints one Markdown row per detector and workdir: test figures at threshold 0.5, the
threshold-free ones, and the review loads at the operating points chosen on validation.
Runs of several seeds (`config.seeds`) show each figure as mean ± 95% interval; for two
such workdirs, a second table says, per figure, whether they differ beyond the spread of
their seeds (Welch's t-test over the per-seed values).
"""

import argparse
import json
import pathlib
import sys

import numpy as np
from scipy import stats

from fakejax import errors
from fakejax.evaluation import intervals
from fakejax.workdir import RunDir

SIGNIFICANCE = 0.05

# (column, report -> value). Own-fakes figures are at the default threshold 0.5.
COLUMNS = (
    ('accuracy', lambda r: r['splits']['own_fakes_vs_reals']['at_threshold']['default_0.5']
     ['accuracy']),
    ('fake recall', lambda r: r['splits']['own_fakes_vs_reals']['at_threshold']['default_0.5']
     ['generated']['recall']),
    ('real recall', lambda r: r['splits']['own_fakes_vs_reals']['at_threshold']['default_0.5']
     ['real']['recall']),
    ('ROC-AUC', lambda r: r['splits']['own_fakes_vs_reals']['threshold_free']['roc_auc']),
    ('anomaly real recall', lambda r: r['splits']['anomaly_class_reals']['at_threshold']
     ['default_0.5']['real']['recall']),
    ('anomaly ROC-AUC', lambda r: r['splits']['anomaly_class_reals']['threshold_free']['roc_auc']),
    ('other GAN fakes caught', lambda r: r['splits']['other_gan_fakes']['at_threshold']
     ['default_0.5']['generated']['recall']),
    ('review load (Youden)', lambda r: r['operating_points']['youden']['review_load']),
    ('review load (95% fakes)', lambda r: r['operating_points']['fake_recall_0.95']['review_load']),
)


class NoReportsError(errors.UserError, FileNotFoundError):
  """A folder that holds no evaluated detector: not an evaluated study workdir."""


def latest_reports(workdir: pathlib.Path) -> dict[str, dict]:
  """Detector name (a GAN's, or a classifier's) -> its latest report.json in `workdir`."""
  reports = {}
  for eval_dir in sorted([*workdir.glob('*/eval'), *workdir.glob('classifiers/*/eval')]):
    run = RunDir(eval_dir.parent)
    if run.evaluated_steps():
      reports[eval_dir.parent.name] = json.loads(
          run.report_json(run.evaluated_steps()[-1]).read_text())
  if not reports:
    raise NoReportsError(f'{workdir} holds no <gan>/eval/<step>/report.json nor '
                         'classifiers/<name>/eval/<step>/report.json: is it a study workdir, '
                         'evaluated?')
  return reports


def cell(report: dict, value_of) -> str:
  try:
    return intervals.format_value(value_of(report), 3)
  except KeyError:  # A split this run did not evaluate (e.g. one GAN: no other GAN's fakes).
    return '—'


def per_seed(report: dict, value_of) -> list[float] | None:
  """A figure's per-seed values, or None for a single-seed run or a missing split."""
  try:
    value = value_of(report)
  except KeyError:
    return None
  return value['values'] if intervals.is_interval(value) else None


def welch_p_value(a: list[float], b: list[float]) -> float:
  """Two-sided p-value of Welch's t-test: do two configs' seeds share a mean?"""
  if min(len(a), len(b)) < 2 or (np.std(a) == 0 and np.std(b) == 0):
    return 0.0 if np.mean(a) != np.mean(b) else 1.0
  return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def difference_markdown(first: tuple[str, dict], second: tuple[str, dict]) -> str:
  """Where two runs of several seeds each differ beyond their seeds' spread, per figure."""
  (label_a, reports_a), (label_b, reports_b) = first, second
  lines = [f"Welch's t-test over seeds, two-sided, {label_b} against {label_a}; "
           f'difference beyond the spread of seeds where p < {SIGNIFICANCE}.', '',
           '| detector | figure | difference (mean) | p | beyond the spread of seeds |',
           '|---|---|---|---|---|']
  for gan in sorted(set(reports_a) & set(reports_b)):
    for name, value_of in COLUMNS:
      a, b = per_seed(reports_a[gan], value_of), per_seed(reports_b[gan], value_of)
      if a is None or b is None:
        continue
      p = welch_p_value(a, b)
      lines.append(f'| {gan} | {name} | {np.mean(b) - np.mean(a):+.3f} | {p:.3f} | '
                   f"{'yes' if p < SIGNIFICANCE else 'no'} |")
  return '\n'.join(lines) if len(lines) > 4 else (
      'No figure has per-seed values in both runs: train each with several seeds '
      "(`--config.seeds='(0,1,2)'`) to test their difference.")


def comparison_markdown(runs: dict[str, dict[str, dict]]) -> str:
  """Label -> detector -> report, as one table: a row per detector and run."""
  lines = ['| detector | run | step | ' + ' | '.join(name for name, _ in COLUMNS) + ' |',
           '|---|---|---|' + '---|' * len(COLUMNS)]
  gans = sorted({gan for reports in runs.values() for gan in reports})
  for gan in gans:
    for label, reports in runs.items():
      if gan in reports:
        report = reports[gan]
        lines.append(f"| {gan} | {label} | {report['step']} | "
                     + ' | '.join(cell(report, value_of) for _, value_of in COLUMNS) + ' |')
  return '\n'.join(lines)


@errors.exit_on_user_error
def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('workdirs', nargs='+', type=pathlib.Path)
  parser.add_argument('--labels', default='',
                      help='Comma-separated, one per workdir (default: the workdir paths).')
  args = parser.parse_args(argv[1:])
  labels = args.labels.split(',') if args.labels else [str(w) for w in args.workdirs]
  if len(labels) != len(args.workdirs):
    parser.error(f'{len(labels)} labels for {len(args.workdirs)} workdirs.')
  runs = {label: latest_reports(workdir) for label, workdir in zip(labels, args.workdirs)}
  print(comparison_markdown(runs))
  if len(runs) == 2:
    print()
    print(difference_markdown(*runs.items()))


if __name__ == '__main__':
  main(sys.argv)
