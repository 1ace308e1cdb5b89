"""Every trained detector of a workdir, listed and restored by name as one `Scorer`.

A detector is anything a study trains that scores images as real or generated:
- `D:<gan>`: the discriminator of a GAN (in the workdir, or in its config's gan_workdir);
  of a run of several seeds, `D:<gan>/seed_<seed>`, one per replica;
- `<name>`: a classifier in `<workdir>/classifiers/<name>` (a dedicated classifier, or an
  autoencoder-study classifier with its input and frozen autoencoder); of a run of several
  seeds, `<name>/seed_<seed>`, one per replica;
- `<name>`: a real-only detector in `<workdir>/real_only/<name>` (a model of reals,
  config.real_only.<name>), named and replicated alike;
- `<name>`: a fusion of other detectors in `<workdir>/fusions/<name>` (config.fusions),
  its fitted weights standing as its one checkpoint (`fakejax.fusion`).
Each kind has a restorer in `DETECTOR_KINDS`; a checkpoint restores with its
preprocessing (input shape, input kind, frozen parameters), so `fakejax.predict` and
`fakejax.evaluate` serve every kind alike.
"""

import dataclasses
import pathlib
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from fakejax import fusion
from fakejax.errors import UserError
from fakejax.evaluation import restore, scoring
from fakejax.train import (checkpoints, classifier_steps, classifier_trainer, real_only_trainer,
                           replicas)
from fakejax.train.autoencoder_trainer import autoencoder_of
from fakejax.workdir import RunDir, Workdir, gan_workdir

DISCRIMINATOR_PREFIX = 'D:'


class DetectorNotFoundError(UserError):
  """The workdir has no detector of the asked name (or several, and none was named)."""


@dataclasses.dataclass(frozen=True)
class DetectorEntry:
  """A trained detector of a workdir, before restoring it."""
  name: str
  kind: str  # A key of DETECTOR_KINDS.
  run: RunDir  # Its checkpoints.
  reports: RunDir  # The evaluation reports of this workdir's study (thresholds).
  # Of a run of several seeds' replicas (config.seeds): which replica, and its seed.
  replica: int | None = None
  seed: int | None = None

  def steps(self) -> list[int]:
    """Its checkpoints' steps; a fusion's one, its fitted weights."""
    if self.kind == 'fusion':
      return [fusion.FUSION_STEP] if (self.run.path / fusion.FUSION_JSON).is_file() else []
    return self.run.steps()

  def report_json(self, step: int) -> pathlib.Path:
    """The evaluation report of `step` holding this detector's thresholds."""
    return self.reports.report_json(step, self.seed)


@dataclasses.dataclass
class RestoredDetector:
  """A detector ready to score uint8 images of `image_shape` at its checkpoint `steps`."""
  entry: DetectorEntry
  architecture: str
  steps: list[int]
  image_shape: tuple[int, int, int]
  trained_on: tuple[str, ...]
  scorer: scoring.Scorer


def list_detectors(config: ml_collections.ConfigDict, workdir: Workdir) -> dict[str, DetectorEntry]:
  """Every detector of the workdir with a checkpoint, by name."""
  gan_dir = gan_workdir(workdir, config.get('gan_workdir', ''))
  seeds = replicas.seeds_of(config.get('seed', 0), config.get('seeds', ()))
  out = {}
  # A classifier study's seeds are its classifiers'; the GANs it reads are one seed's.
  gan_seeds = seeds[:1] if 'classifier' in config else seeds
  for gan in config.get('gans', {}):
    if gan_dir.gan(gan).steps():
      out.update(_entries(DISCRIMINATOR_PREFIX + gan, 'discriminator', gan_dir.gan(gan),
                          _discriminator_reports(workdir, gan_dir, gan), gan_seeds))
  for name in workdir.classifier_names():
    run = workdir.classifier(name)
    out.update(_entries(name, 'classifier', run, run, seeds))
  for name in config.get('real_only', {}):
    run = workdir.real_only(name)
    if run.steps():
      out.update(_entries(name, 'real_only', run, run, seeds))
  for name in config.get('fusions', {}):
    entry = DetectorEntry(name, 'fusion', workdir.fusion(name), workdir.fusion(name))
    if entry.steps():
      out[name] = entry
  return out


def replica_name(name: str, seed: int) -> str:
  """The detector name of model `name`'s replica of `seed`, in a run of several seeds."""
  return f'{name}/seed_{seed}'


def _entries(name: str, kind: str, run: RunDir, reports: RunDir,
             seeds: Sequence[int]) -> dict[str, DetectorEntry]:
  """The detector `name`; of a run of several seeds, each replica as a detector of its own."""
  if len(seeds) == 1:
    return {name: DetectorEntry(name, kind, run, reports)}
  return {replica_name(name, seed): DetectorEntry(replica_name(name, seed), kind, run, reports,
                                                  k, seed)
          for k, seed in enumerate(seeds)}


def _discriminator_reports(workdir: Workdir, gan_dir: Workdir, gan: str) -> RunDir:
  """The study's own evaluation of the discriminator where it wrote one (a classifier
  study), else the GAN's own reports (the DCGAN study)."""
  own = workdir.discriminator_reports(gan)
  return own if (own.path / 'eval').is_dir() else gan_dir.gan(gan)


def find_detector(config: ml_collections.ConfigDict, workdir: Workdir, name: str) -> DetectorEntry:
  """The detector `name`; with no name, the workdir's only one. Errors list the choices."""
  entries = list_detectors(config, workdir)
  if not entries:
    raise DetectorNotFoundError(f'{workdir.root} holds no trained detector yet.')
  if not name:
    if len(entries) > 1:
      raise DetectorNotFoundError(f'{workdir.root} holds several detectors: choose one with '
                                  f'--detector, one of {sorted(entries)}.')
    return next(iter(entries.values()))
  if name not in entries:
    raise DetectorNotFoundError(f'{workdir.root} has no detector {name!r}; it has '
                                f'{sorted(entries)}.')
  return entries[name]


def _restore_discriminator(config, entry: DetectorEntry, steps: Sequence[int], mesh: Mesh,
                           batch_size: int) -> RestoredDetector:
  gan = entry.name[len(DISCRIMINATOR_PREFIX):].split('/')[0]
  stacked = restore.restore_gan(config.gans[gan], entry.run, gan, steps, mesh, entry.replica)
  return RestoredDetector(entry=entry, architecture=config.gans[gan].architecture,
                          steps=list(steps), image_shape=stacked.models.image_shape,
                          trained_on=(gan,), scorer=restore.gan_scorer(stacked, mesh, batch_size))


def classifier_input(config: ml_collections.ConfigDict, metadata: dict,
                     image_shape: tuple[int, ...]) -> tuple[classifier_trainer.Classifier, dict]:
  """The classifier of a checkpoint's metadata, and frozen parameters of the right shapes."""
  input_kind, autoencoder_name = metadata.get('input', 'image'), metadata.get('autoencoder')
  autoencoder, frozen = None, {}
  if autoencoder_name:
    autoencoder = autoencoder_of(config.autoencoders[autoencoder_name])
    # Zeros of the parameters' shapes, computing no initialiser (seconds, run op by op).
    shapes = jax.eval_shape(autoencoder.init, jax.random.PRNGKey(0),
                            jax.ShapeDtypeStruct((1, *image_shape), np.float32))
    frozen = {'autoencoder': jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype),
                                          shapes['params'])}
  return classifier_trainer.classifier_of(config.classifier, input_kind, autoencoder), frozen


def classifier_architecture(config: ml_collections.ConfigDict, metadata: dict) -> str:
  """How reports name a classifier: its architecture, and its input where not the image."""
  if 'input' not in metadata:
    return config.classifier.architecture
  autoencoder = metadata.get('autoencoder')
  inputs = metadata['input'] + (f' of autoencoder {autoencoder}' if autoencoder else '')
  return f'{config.classifier.architecture} on {inputs}'


def _restore_classifier(config, entry: DetectorEntry, steps: Sequence[int], mesh: Mesh,
                        batch_size: int, all_replicas: bool = False) -> RestoredDetector:
  """A classifier at `steps`; with `all_replicas`, every replica of a run of several seeds
  in one Scorer, replica-major: checkpoint k * len(steps) + i is replica k at steps[i]."""
  metadata = read_metadata(entry.run, steps[-1])
  image_shape = tuple(metadata['image_shape'])
  classifier, frozen = classifier_input(config, metadata, image_shape)
  like = classifier_trainer.restore_like_state(config.classifier, classifier, image_shape, frozen,
                                               mesh)
  states = _replica_states(config, entry, steps, like, all_replicas)
  stacked = restore.stack([classifier_steps.variables(state) for state in states])
  return RestoredDetector(entry=entry, architecture=classifier_architecture(config, metadata),
                          steps=list(steps) * (len(states) // len(steps)),
                          image_shape=image_shape,
                          trained_on=tuple(metadata.get('trained_on', ())),
                          scorer=classifier.scorer(stacked, mesh, batch_size))


def _restore_real_only(config, entry: DetectorEntry, steps: Sequence[int], mesh: Mesh,
                       batch_size: int, all_replicas: bool = False) -> RestoredDetector:
  """A real-only detector at `steps`; `all_replicas` as for a classifier."""
  name = entry.run.path.name
  real_only_config = config.real_only[name]
  image_shape = tuple(read_metadata(entry.run, steps[-1])['image_shape'])
  like = real_only_trainer.restore_like_state(real_only_config, image_shape, mesh)
  states = _replica_states(config, entry, steps, like, all_replicas)
  stacked = restore.stack([classifier_steps.variables(state) for state in states])
  return RestoredDetector(entry=entry, architecture=f'{real_only_config.architecture} (reals only)',
                          steps=list(steps) * (len(states) // len(steps)),
                          image_shape=image_shape, trained_on=(),
                          scorer=real_only_trainer.scorer(real_only_config, stacked, mesh,
                                                          batch_size))


def _replica_states(config, entry: DetectorEntry, steps: Sequence[int], like,
                    all_replicas: bool) -> list:
  """The states of `steps` of the entry's replica, or of every replica (replica-major)."""
  if all_replicas:
    return checkpoints.restore_every_replica(
        entry.run, steps, like, replicas.seeds_of(config.seed, config.seeds), entry.run.path.name)
  return checkpoints.restore_replica_states(entry.run, steps, like, entry.replica, entry.name)


def _restore_fusion(config, entry: DetectorEntry, steps: Sequence[int], mesh: Mesh,
                    batch_size: int) -> RestoredDetector:
  """A fusion: each member at the checkpoint it was fitted on, weighed by its weights."""
  del steps  # Its one: the fitted weights.
  fitted = fusion.Fusion.read(entry.run.path / fusion.FUSION_JSON)
  workdir = Workdir(entry.run.path.parent.parent)
  members = [restore_detector(config, find_detector(config, workdir, name), [step], mesh,
                              batch_size)
             for name, step in zip(fitted.members, fitted.member_steps)]
  return RestoredDetector(entry=entry, architecture='fusion of ' + ' + '.join(fitted.members),
                          steps=[fusion.FUSION_STEP], image_shape=members[0].image_shape,
                          trained_on=fitted.trained_on,
                          scorer=fusion.FusedScorer(fitted, [member_key(m) for m in members],
                                                    [m.scorer for m in members]))


def member_key(detector: RestoredDetector) -> tuple:
  """What names a restored detector's scores: its run folder, name and last step."""
  return str(detector.entry.run.path), detector.entry.name, detector.steps[-1]


def restore_latest(config: ml_collections.ConfigDict, workdir: Workdir, name: str, mesh: Mesh,
                   batch_size: int) -> RestoredDetector:
  """Detector `name` of the workdir at its latest checkpoint."""
  entry = find_detector(config, workdir, name)
  return restore_detector(config, entry, entry.steps()[-1:], mesh, batch_size)


def restore_replicas(config: ml_collections.ConfigDict, entry: DetectorEntry,
                     steps: Sequence[int], mesh: Mesh, batch_size: int) -> RestoredDetector:
  """Every replica of a classifier or real-only detector trained with several seeds
  (`entry`: any one of them) at `steps`, as one Scorer: the evaluation scores them all in
  one call. Its `steps` repeat per replica (replica-major)."""
  return DETECTOR_KINDS[entry.kind](config, entry, steps, mesh, batch_size, all_replicas=True)


# Kind -> (config, entry, steps, mesh, batch size) -> RestoredDetector.
DETECTOR_KINDS: dict[str, Callable[..., RestoredDetector]] = {
    'discriminator': _restore_discriminator,
    'classifier': _restore_classifier,
    'real_only': _restore_real_only,
    'fusion': _restore_fusion,
}


def read_metadata(run: RunDir, step: int) -> dict:
  """What the checkpoint of `step` records of its model (architecture, preprocessing)."""
  with checkpoints.checkpoint_manager(run.checkpoints, max_to_keep=None,
                                      save_interval_steps=1) as manager:
    return checkpoints.read_metadata(manager, step)


def restore_detector(config: ml_collections.ConfigDict, entry: DetectorEntry,
                     steps: Sequence[int], mesh: Mesh, batch_size: int) -> RestoredDetector:
  """Restores the checkpoint `steps` of a detector, stacked, as one Scorer."""
  missing = sorted(set(steps) - set(entry.steps()))
  if missing:
    raise checkpoints.CheckpointNotFoundError(
        f'No checkpoint of {entry.name} at steps {missing} in {entry.run.checkpoints}; '
        f'available: {entry.steps()}.')
  return DETECTOR_KINDS[entry.kind](config, entry, steps, mesh, batch_size)
