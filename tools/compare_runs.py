r"""Key detector figures of several DCGAN-study workdirs side by side (seeds, dtypes, configs).

  python tools/compare_runs.py runs/seed1 runs/seed2 runs/seed1_bf16 \
      --labels='seed 1,seed 2,seed 1 bfloat16'

Reads the latest evaluation of every GAN in each workdir
(`<workdir>/<gan>/eval/<step>/report.json`, as fakejax.main and fakejax.evaluate write
it) and prints one Markdown row per GAN and workdir: test figures at threshold 0.5, the
threshold-free ones, and the review loads at the operating points chosen on validation.
"""

import argparse
import json
import pathlib
import sys

from fakejax import errors
from fakejax.workdir import RunDir

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
  """A folder that holds no evaluated GAN: not an evaluated DCGAN-study workdir."""


def latest_reports(workdir: pathlib.Path) -> dict[str, dict]:
  """GAN name -> its latest report.json in `workdir`."""
  reports = {}
  for eval_dir in sorted(workdir.glob('*/eval')):
    run = RunDir(eval_dir.parent)
    steps = [int(p.name) for p in eval_dir.iterdir()
             if p.name.isdigit() and run.report_json(int(p.name)).is_file()]
    if steps:
      reports[eval_dir.parent.name] = json.loads(run.report_json(max(steps)).read_text())
  if not reports:
    raise NoReportsError(f'{workdir} holds no <gan>/eval/<step>/report.json: is it a '
                         'workdir of the DCGAN study, evaluated?')
  return reports


def cell(report: dict, value_of) -> str:
  try:
    return f'{value_of(report):.3f}'
  except KeyError:  # A split this run did not evaluate (e.g. one GAN: no other GAN's fakes).
    return '—'


def comparison_markdown(runs: dict[str, dict[str, dict]]) -> str:
  """Label -> GAN -> report, as one table: a row per GAN and run."""
  lines = ['| GAN | run | step | ' + ' | '.join(name for name, _ in COLUMNS) + ' |',
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


if __name__ == '__main__':
  main(sys.argv)
