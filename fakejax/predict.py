r"""Scores uploaded images with a trained detector, for the moderation queue.

  python -m fakejax.predict --workdir=runs/dcgan_fmnist --detector=D:dcgan_radford \
      --operating_point=youden --output=scores.csv uploads/ more.png list_of_paths.txt
  python -m fakejax.predict --workdir=runs/detectors_fmnist --detector=pooled_all uploads/

Any detector of any study's workdir: `D:<gan>` for a GAN's discriminator, the classifier's
name for a classifier (without --detector where there is only one; the error lists them).

PATHS are image files, folders (searched recursively) or text files listing paths (one a
line). Each image gets its probability of being generated and the decision at the chosen
operating point (read from the evaluation report of the checkpoint). Unreadable files
get an error row; the exit status is 3 when any file could not be read (1 when nothing
could be scored: a missing workdir, checkpoint or threshold).
"""

import csv
import dataclasses
import json
import pathlib
import sys
import time
from collections.abc import Iterator, Sequence

from absl import app, flags, logging
import numpy as np

from fakejax import errors, runtime
from fakejax.errors import UserError

FLAGS = flags.FLAGS
runtime.define_runtime_flags()
flags.DEFINE_string('workdir', None, 'A workdir written by fakejax.main.', required=True)
flags.DEFINE_string('detector', '', "Which detector of the workdir: 'D:<gan>' for a GAN's "
                    "discriminator ('D:<gan>/seed_<seed>' of a run of several seeds), or a "
                    'classifier\'s name (needed when it holds several).')
flags.DEFINE_integer('checkpoint_step', -1, 'Checkpoint step (default: the latest).')
flags.DEFINE_string('operating_point', 'youden',
                    "A threshold of the evaluation report (e.g. 'youden', 'fake_recall_0.95', "
                    "'review_budget_0.02', 'default_0.5') or a number in [0, 1].")
flags.DEFINE_string('output', '-', "Output file ('-': stdout); .jsonl writes JSON lines.")
flags.DEFINE_enum('format', '', ['', 'csv', 'jsonl'], 'Output format (default: from --output).')
flags.DEFINE_integer('batch_size', 256, 'Images scored per batch.')
flags.DEFINE_string('contact_sheet', '', 'PNG file of the flagged images with their scores.')

COLUMNS = ('path', 'fake_probability', 'decision', 'model', 'checkpoint_step', 'threshold',
           'error')
LIST_SUFFIXES = ('.txt', '.lst')
# 1 is a usage error (nothing scored); 3: scored, but some files could not be read.
ERRORS_EXIT_CODE = 3


class DetectorError(UserError):
  """The workdir has no usable detector for these options."""


@dataclasses.dataclass
class Detector:
  """A restored detector at one checkpoint, with the threshold of its operating point."""
  name: str
  architecture: str
  step: int
  threshold: float
  operating_point: str
  image_shape: tuple[int, int, int]
  scorer: object  # evaluation.scoring.Scorer over one checkpoint.


def expand_paths(paths: Sequence[str]) -> Iterator[pathlib.Path]:
  """Files as given, folders recursively (image files only), and lists of paths."""
  from fakejax.data import folders  # pylint: disable=g-import-not-at-top
  for raw in paths:
    path = pathlib.Path(raw)
    if path.is_dir():
      yield from folders.image_files(path)
    elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
      lines = path.read_text().splitlines()
      yield from expand_paths([line.strip() for line in lines if line.strip()])
    else:
      yield path  # Missing files become error rows.


def threshold_of(report_path: pathlib.Path, operating_point: str) -> float:
  """A number given directly, or the named threshold of the evaluation report."""
  try:
    value = float(operating_point)
  except ValueError:
    pass
  else:
    if not 0.0 <= value <= 1.0:
      raise DetectorError(f'--operating_point={operating_point} is not in [0, 1].')
    return value
  if not report_path.is_file():
    raise DetectorError(
        f'No evaluation report {report_path} to read the {operating_point!r} threshold from: '
        'run python -m fakejax.evaluate on the workdir first, or pass a number.')
  thresholds = json.loads(report_path.read_text())['thresholds']
  if operating_point not in thresholds:
    raise DetectorError(f'--operating_point={operating_point} is not in {report_path}; '
                        f'it has {sorted(thresholds)} (or pass a number).')
  return float(thresholds[operating_point])


def load_detector(workdir: pathlib.Path, name: str, step: int, operating_point: str,
                  batch_size: int) -> Detector:
  """Restores the detector and its threshold; every problem is an error before any work."""
  from fakejax import detectors, sharding  # pylint: disable=g-import-not-at-top
  from fakejax.evaluation import restore  # pylint: disable=g-import-not-at-top
  from fakejax.workdir import Workdir  # pylint: disable=g-import-not-at-top

  workdir = Workdir(workdir)
  config = restore.workdir_config(workdir)
  entry = detectors.find_detector(config, workdir, name)
  available = entry.steps()
  step = available[-1] if step < 0 else step
  if step not in available:
    raise DetectorError(f'No checkpoint of {entry.name} at step {step}; available: {available}.')
  threshold = threshold_of(entry.report_json(step), operating_point)
  mesh = sharding.build_mesh()
  if batch_size % mesh.size:
    raise DetectorError(f'--batch_size={batch_size} must be divisible by the {mesh.size} devices.')
  restored = detectors.restore_detector(config, entry, [step], mesh, batch_size)
  return Detector(name=entry.name, architecture=restored.architecture, step=step,
                  threshold=threshold, operating_point=operating_point,
                  image_shape=restored.image_shape, scorer=restored.scorer)


def score_paths(detector: Detector, paths: Iterator[pathlib.Path], batch_size: int,
                log_every_s: float = 10.0) -> Iterator[dict]:
  """Rows of COLUMNS for every path, scored in batches; unreadable files give error rows."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from fakejax.data import folders  # pylint: disable=g-import-not-at-top

  base = {'model': f'{detector.name} ({detector.architecture})',
          'checkpoint_step': detector.step, 'threshold': detector.threshold}
  start = last_log = time.monotonic()
  done = 0

  def flush(batch_paths, images):
    fake_prob = 1.0 - detector.scorer.score(np.stack(images))[0]
    for path, p in zip(batch_paths, fake_prob):
      yield {**base, 'path': str(path), 'fake_probability': float(p),
             'decision': 'generated' if p >= detector.threshold else 'real', 'error': ''}

  batch_paths, images = [], []
  for path in paths:
    try:
      images.append(folders.read_image(path, detector.image_shape))
      batch_paths.append(path)
    except Exception as error:  # Any unreadable file: an error row, the rest goes on.
      yield {**base, 'path': str(path), 'fake_probability': '', 'decision': 'error',
             'error': f'{type(error).__name__}: {error}'}
    if len(images) == batch_size:
      yield from flush(batch_paths, images)
      done += len(images)
      batch_paths, images = [], []
      if time.monotonic() - last_log > log_every_s:
        last_log = time.monotonic()
        logging.info('Scored %d images (%.0f images/s).', done, done / (last_log - start))
  if images:
    yield from flush(batch_paths, images)


def write_rows(rows: Iterator[dict], output, output_format: str) -> list[dict]:
  """Writes rows as they come; returns them for the summary."""
  written = []
  writer = csv.DictWriter(output, fieldnames=COLUMNS) if output_format == 'csv' else None
  if writer:
    writer.writeheader()
  for row in rows:
    if writer:
      writer.writerow(row)
    else:
      output.write(json.dumps(row) + '\n')
    written.append(row)
  return written


def contact_sheet(rows: list[dict], image_shape, path: pathlib.Path, limit: int = 64) -> None:
  """A PNG grid of the flagged images, most surely generated first, with their scores."""
  from fakejax.data import folders  # pylint: disable=g-import-not-at-top
  from fakejax.evaluation import report  # pylint: disable=g-import-not-at-top
  flagged = sorted((r for r in rows if r['decision'] == 'generated'),
                   key=lambda r: -r['fake_probability'])[:limit]
  images = np.stack([folders.read_image(r['path'], image_shape) for r in flagged]
                    or [np.full(image_shape, 255, np.uint8)])
  captions = [f"{r['fake_probability']:.2f}\n{pathlib.Path(r['path']).name[:14]}"
              for r in flagged]
  report.plot_captioned_images(images, captions, path,
                               title=f'{len(flagged)} flagged images (fake probability)')


@errors.exit_on_user_error
def main(argv) -> None:
  paths = argv[1:]
  if not paths:
    raise app.UsageError('Give image files, folders or lists of paths to score.')
  runtime.setup(FLAGS)
  output_format = FLAGS.format or ('jsonl' if FLAGS.output.endswith('.jsonl') else 'csv')
  detector = load_detector(pathlib.Path(FLAGS.workdir), FLAGS.detector, FLAGS.checkpoint_step,
                           FLAGS.operating_point, FLAGS.batch_size)
  rows = score_paths(detector, expand_paths(paths), FLAGS.batch_size)
  if FLAGS.output == '-':
    written = write_rows(rows, sys.stdout, output_format)
  else:
    with open(FLAGS.output, 'w', newline='') as output:
      written = write_rows(rows, output, output_format)
  errors = sum(row['decision'] == 'error' for row in written)
  flagged = sum(row['decision'] == 'generated' for row in written)
  scored = len(written) - errors
  logging.info('Scored %d images with %s at threshold %.3f (%s): %d flagged for review '
               '(%.1f%%), %d could not be read.', scored, detector.name, detector.threshold,
               detector.operating_point, flagged, 100.0 * flagged / max(scored, 1), errors)
  if FLAGS.contact_sheet:
    contact_sheet(written, detector.image_shape, pathlib.Path(FLAGS.contact_sheet))
  if errors:
    sys.exit(ERRORS_EXIT_CODE)


if __name__ == '__main__':
  app.run(main)
