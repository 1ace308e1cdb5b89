r"""Images/s of `fakejax.predict` on a folder of PNGs: reading, decoding and scoring.

  python tools/benchmark_predict.py --workdir=runs/dcgan_fmnist --detector=D:dcgan_radford \
      --num_images=10000

Writes Fashion-MNIST test images (repeated as needed) as PNG files into a temporary folder,
scores them as predict does, and prints the time of each part and the total images/s.
--detector names the detector as predict's flag does: `D:<gan>` for a GAN's
discriminator, a classifier's name for a classifier (empty: the workdir's only one).
"""

import argparse
import pathlib
import tempfile
import time

from PIL import Image

from fakejax import errors, predict
from fakejax.data import fashion_mnist


def write_pngs(folder: pathlib.Path, num_images: int, idx_dir: str) -> None:
  images = fashion_mnist.read_idx_split(idx_dir, 'test').images
  for index in range(num_images):
    Image.fromarray(images[index % len(images), ..., 0]).save(folder / f'{index:06d}.png')


@errors.exit_on_user_error
def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--detector', default='',
                      help="'D:<gan>' for a GAN's discriminator, or a classifier's name.")
  parser.add_argument('--num_images', type=int, default=10_000)
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--idx_dir', default='/usr/share/datasets/fashion-mnist')
  args = parser.parse_args()
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.FLAGS(['benchmark', f'--workdir={args.workdir}'])  # predict's flags must be parsed.
  with tempfile.TemporaryDirectory() as folder:
    folder = pathlib.Path(folder)
    write_pngs(folder, args.num_images, args.idx_dir)
    detector = predict.load_detector(pathlib.Path(args.workdir), args.detector, -1, '0.5',
                                     args.batch_size)
    paths = list(predict.expand_paths([str(folder)]))
    # Warm-up: compile the scoring function for the batch shape.
    list(predict.score_paths(detector, iter(paths[:args.batch_size]), args.batch_size))
    start = time.perf_counter()
    rows = list(predict.score_paths(detector, iter(paths), args.batch_size))
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    for path in paths:
      predict_read = Image.open(path)
      predict_read.load()
    decode_seconds = time.perf_counter() - start
  scored = sum(r['decision'] != 'error' for r in rows)
  print('| images | total s | images/s | of which reading+decoding s |')
  print('|---|---|---|---|')
  print(f'| {scored} | {seconds:.1f} | {scored / seconds:.0f} | {decode_seconds:.1f} |')


if __name__ == '__main__':
  main()
