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

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from fakejax import classifier_runs, sharding
from fakejax.data import transforms
from fakejax.evaluation import evaluator, report
from fakejax.models import build_gan
from fakejax.models.autoencoder import AutoEncoder
from fakejax.train import autoencoder_gan, classifier_steps, gan_state, gan_steps, loop

NUM_IMAGES_IN_GRID = 32
COMPARISON_MD = 'comparison.md'
COMPARISON_JSON = 'comparison.json'
# The operating point of the comparison: Youden's J, chosen on validation.
COMPARISON_THRESHOLD = 'youden'
AUTOENCODER_INPUTS = ('reconstruction', 'residual', 'residual_spectrum')


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
    if kind in AUTOENCODER_INPUTS:
      out += [Variant(kind, name) for name in config.autoencoders]
    else:
      out.append(Variant(kind, None))
  return out


def build_autoencoder(ae_config: ml_collections.ConfigDict) -> AutoEncoder:
  return AutoEncoder(depth=ae_config.depth, base_features=ae_config.base_features,
                     latent_features=ae_config.latent_features)


def autoencoder_job(config: ml_collections.ConfigDict, name: str,
                    ae_config: ml_collections.ConfigDict, grid_images: np.ndarray,
                    mesh: Mesh) -> loop.Job:
  """The loop's job for autoencoder `name` of `ae_config`: its GAN step, reconstruction grids."""
  autoencoder = build_autoencoder(ae_config)
  discriminator = build_gan(ae_config.discriminator).discriminator
  tx = gan_state.build_optimizer(ae_config.optimizer)
  image_shape = grid_images.shape[1:]
  reconstruct = jax.jit(
      lambda params: gan_steps.to_uint8(autoencoder.apply(
          {'params': params}, gan_steps.to_model_range(jnp.asarray(grid_images)))),
      out_shardings=sharding.replicated(mesh))

  def images(state) -> dict[str, np.ndarray]:
    # Each original with its reconstruction on its right.
    pairs = np.concatenate([grid_images, np.asarray(reconstruct(state.g_params))], axis=2)
    return {'reconstructions': loop.image_grid(pairs, columns=4)}

  return loop.Job(
      name=f'autoencoder {name}',
      init=lambda key: autoencoder_gan.init_state(autoencoder, discriminator, tx, image_shape, key),
      train_step=autoencoder_gan.make_train_step(
          autoencoder, discriminator, tx, reconstruction_loss=ae_config.reconstruction_loss,
          reconstruction_weight=ae_config.reconstruction_weight,
          adversarial_weight=ae_config.adversarial_weight,
          skip_nonfinite=config.skip_nonfinite_updates),
      images=images,
      metadata={'autoencoder': ae_config.to_dict(), 'image_shape': list(image_shape)})


def make_prepare(kind: str, autoencoder: AutoEncoder | None) -> classifier_steps.Prepare:
  """(frozen parameters, images) -> the classifier's input of `kind`."""
  def prepare(frozen: dict, images: jax.Array) -> jax.Array:
    reconstruct = None
    if autoencoder is not None:
      reconstruct = lambda x: autoencoder.apply({'params': frozen['autoencoder']}, x)
    return transforms.classifier_input(kind, images, reconstruct)
  return prepare


def classifier(config: ml_collections.ConfigDict, variant: Variant, autoencoder_params: dict,
               image_shape: tuple[int, ...],
               validation: classifier_runs.ValidationSet | None = None,
               mesh: Mesh | None = None) -> classifier_runs.Classifier:
  """The classifier of one variant: its input, and the frozen autoencoder it needs."""
  autoencoder, frozen = None, {}
  if variant.autoencoder is not None:
    autoencoder = build_autoencoder(config.autoencoders[variant.autoencoder])
    frozen = {'autoencoder': autoencoder_params[variant.autoencoder]}
  return classifier_runs.classifier(
      config, variant.name, image_shape, make_prepare(variant.input_kind, autoencoder), frozen,
      metadata={'input': variant.input_kind, 'autoencoder': variant.autoencoder,
                'trained_on': list(config.classifier.train_generators)},
      validation=validation, mesh=mesh)


def evaluate_classifier(config: ml_collections.ConfigDict, variant: Variant,
                        model: classifier_runs.Classifier, state, data: classifier_runs.StudyData,
                        mesh: Mesh) -> dict:
  inputs = variant.input_kind + (f' of autoencoder {variant.autoencoder}'
                                 if variant.autoencoder else '')
  detector = evaluator.Detector(
      name=variant.name, architecture=f'{config.classifier.architecture} on {inputs}',
      steps=[int(state.step)], trained_on=tuple(config.classifier.train_generators))
  return classifier_runs.evaluate(config, detector, model, state, data, mesh)


def reconstruct(autoencoder: AutoEncoder, params: dict, images_uint8: np.ndarray,
                batch_size: int = 1000) -> np.ndarray:
  """The autoencoder's reconstructions of uint8 images, as uint8 images."""
  apply = jax.jit(lambda params, images: gan_steps.to_uint8(
      autoencoder.apply({'params': params}, gan_steps.to_model_range(images))))
  params = jax.device_get(params)
  parts = [np.asarray(apply(params, images_uint8[start:start + batch_size]))
           for start in range(0, len(images_uint8), batch_size)]
  return np.concatenate(parts) if parts else images_uint8[:0]


def reconstruction_errors(config: ml_collections.ConfigDict, autoencoder_params: dict,
                          data: classifier_runs.StudyData) -> dict[str, dict[str, float]]:
  """Mean absolute reconstruction error (in [-1, 1] units) of test reals and fakes."""
  sets = {'seen-class reals': data.reals.test_seen, 'anomaly-class reals': data.reals.test_anomaly,
          **{f'{name} fakes': fakes['test'] for name, fakes in data.fakes.items()}}
  out = {}
  for name, params in autoencoder_params.items():
    autoencoder = build_autoencoder(config.autoencoders[name])
    error = jax.jit(lambda params, images, model=autoencoder: jnp.abs(
        model.apply({'params': params}, images) - images).mean(axis=(1, 2, 3)))
    out[name] = {}
    for set_name, images in sets.items():
      if len(images):
        errors = [error(params, gan_steps.to_model_range(jnp.asarray(images[a:a + 1000])))
                  for a in range(0, len(images), 1000)]
        out[name][set_name] = float(np.mean(np.concatenate(errors)))
  return out


def comparison_rows(config: ml_collections.ConfigDict, reports: dict[str, dict]) -> list[dict]:
  """One row per classifier and split: AP, and accuracy and recalls at the Youden threshold."""
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
  fmt = lambda value: '—' if value is None else f'{value:.3f}'
  trained_on = ', '.join(config.classifier.train_generators)
  lines = ['# Autoencoder-GAN study: classifier input x autoencoder depth x split', '',
           f'AlexNet-style classifiers trained on reals against fakes of: {trained_on}. '
           'AP is threshold-free (a one-class split is paired with its counterpart, as in '
           'the per-classifier reports); accuracy and recalls are at the Youden threshold '
           'chosen on validation.', '',
           '| input | AE depth | split | AP | accuracy | fake recall | real recall |',
           '|---|---|---|---|---|---|---|']
  for row in rows:
    lines.append(f"| {row['input']} | {row['autoencoder_depth'] or '—'} | {row['split']} | "
                 f"{fmt(row['average_precision'])} | {fmt(row['accuracy'])} | "
                 f"{fmt(row['fake_recall'])} | {fmt(row['real_recall'])} |")
  lines += ['', '## Best input per split (by AP)', '']
  for split in dict.fromkeys(row['split'] for row in rows):
    best = max((row for row in rows if row['split'] == split),
               key=lambda row: row['average_precision'])
    depth = f" (AE depth {best['autoencoder_depth']})" if best['autoencoder_depth'] else ''
    lines.append(f"- {split}: {best['input']}{depth}, AP {best['average_precision']:.3f}")
  if errors:
    set_names = list(dict.fromkeys(name for by_set in errors.values() for name in by_set))
    lines += ['', '## Mean absolute reconstruction error (pixel range [-1, 1])', '',
              '| autoencoder | depth | ' + ' | '.join(set_names) + ' |',
              '|---|---|' + '---|' * len(set_names)]
    for name, by_set in errors.items():
      lines.append(f'| {name} | {config.autoencoders[name].depth} | '
                   + ' | '.join(fmt(by_set.get(s)) for s in set_names) + ' |')
  return '\n'.join(lines) + '\n'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the study in `workdir` (resuming what is there); returns the comparison rows."""
  workdir, mesh, data = classifier_runs.start_study(config, workdir)
  grid_images = data.reals.validation[:NUM_IMAGES_IN_GRID]
  autoencoder_params = {}
  for name, ae_config in config.autoencoders.items():
    settings = loop.LoopSettings.from_config(config, batch_size=ae_config.batch_size,
                                             num_epochs=ae_config.num_epochs)
    result = loop.train(autoencoder_job(config, name, ae_config, grid_images, mesh), settings,
                        data.reals.train, workdir / 'autoencoders' / name, mesh)
    autoencoder_params[name] = result.state.g_params
  train_set = classifier_runs.train_set(config, data, config.classifier.train_generators)
  settings = loop.LoopSettings.from_config(config, batch_size=config.classifier.batch_size,
                                           num_epochs=config.classifier.num_epochs)
  image_shape = data.reals.train.shape[1:]
  validation = classifier_runs.validation_set(data, config.classifier.train_generators)
  reports = {}
  for variant in variants(config):
    model = classifier(config, variant, autoencoder_params, image_shape, validation, mesh)
    run_dir = workdir / 'classifiers' / variant.name
    result = loop.train(model.job, settings, train_set, run_dir, mesh)
    reports[variant.name] = evaluate_classifier(config, variant, model, result.state, data, mesh)
    if jax.process_index() == 0:
      writer = loop.make_writer(run_dir / 'tensorboard')
      out = report.write_checkpoint_report(run_dir, reports[variant.name], writer)
      logging.info('Wrote the evaluation of classifier %s to %s.', variant.name, out)
  rows = comparison_rows(config, reports)
  if jax.process_index() == 0:
    markdown = comparison_markdown(rows, reconstruction_errors(config, autoencoder_params, data),
                                   config)
    (workdir / COMPARISON_MD).write_text(markdown)
    (workdir / COMPARISON_JSON).write_text(json.dumps(rows, indent=1) + '\n')
    logging.info('Comparison:\n%s', markdown)
  return {'rows': rows, 'reports': reports}
