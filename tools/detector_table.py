"""Prints the first detector numbers of a workdir as a Markdown table.

  python tools/detector_table.py runs/dcgan_quick
"""

import json
import pathlib
import sys

DETECTOR_METRICS_FILE = 'detector_metrics.json'
COLUMNS = (
    ('own fakes + all test reals: accuracy', 'own_fakes_vs_all_reals', 'accuracy'),
    ('fake recall (own fakes)', 'own_fakes', 'fake_recall'),
    ('real recall (seen-class test reals)', 'seen_class_reals', 'real_recall'),
    ('real recall (anomaly-class test reals)', 'anomaly_class_reals', 'real_recall'),
)


def detector_table(workdir: pathlib.Path) -> str:
  files = sorted(workdir.glob(f'*/{DETECTOR_METRICS_FILE}'))
  if not files:
    raise SystemExit(f'No {DETECTOR_METRICS_FILE} under {workdir}: has the main job finished?')
  lines = ['| GAN | step | ' + ' | '.join(title for title, _, _ in COLUMNS) + ' |',
           '|---|---|' + '---|' * len(COLUMNS)]
  for path in files:
    numbers = json.loads(path.read_text())
    cells = [f'{numbers[split][metric]:.3f}' for _, split, metric in COLUMNS]
    lines.append(f'| {path.parent.name} | {numbers["step"]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


if __name__ == '__main__':
  if len(sys.argv) != 2:
    raise SystemExit(__doc__)
  print(detector_table(pathlib.Path(sys.argv[1])))
