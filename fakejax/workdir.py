"""Where a run writes what: the one description of a workdir's layout.

  <workdir>/config.json                      the config the study ran with
  <workdir>/timing.json                      wall time by stage, summed over invocations
  <workdir>/<gan>/                           one GAN (a discriminator detector)
  <workdir>/autoencoders/<name>/             one autoencoder-GAN
  <workdir>/generators/<name>/               one generator of another family (VAE, diffusion, flow)
  <workdir>/classifiers/<name>/              one classifier detector
  <workdir>/discriminators/<gan>/eval/       a study's own evaluation of a GAN's discriminator
                                             (whose checkpoints may be in gan_workdir)
  <workdir>/fake_pool/                       every generator's fakes, stored once
  <run>/checkpoints/<step>/                  Orbax checkpoints of one trained model
  <run>/eval/<step>/report.json              its evaluation at that step (and .md, .png)
  <run>/eval/<step>/seed_<seed>/             of a run of several seeds: each seed's evaluation
  <run>/tensorboard/                         its TensorBoard summaries
"""

import dataclasses
import pathlib

CONFIG_JSON = 'config.json'
REPORT_JSON = 'report.json'
TIMING_JSON = 'timing.json'


@dataclasses.dataclass(frozen=True)
class RunDir:
  """The folder of one trained model: checkpoints, evaluations, TensorBoard files."""
  path: pathlib.Path

  @property
  def checkpoints(self) -> pathlib.Path:
    return self.path / 'checkpoints'

  @property
  def tensorboard(self) -> pathlib.Path:
    return self.path / 'tensorboard'

  def eval_dir(self, step: int, seed: int | None = None) -> pathlib.Path:
    """The evaluation of `step`; of a run of several seeds, `seed`'s own (None: theirs
    combined)."""
    folder = self.path / 'eval' / str(step)
    return folder if seed is None else folder / f'seed_{seed}'

  def report_json(self, step: int, seed: int | None = None) -> pathlib.Path:
    return self.eval_dir(step, seed) / REPORT_JSON

  def evaluated_steps(self) -> list[int]:
    """The steps with a report (of all seeds combined, in a run of several), oldest first."""
    folder = self.path / 'eval'
    if not folder.is_dir():
      return []
    return sorted(int(p.name) for p in folder.iterdir()
                  if p.name.isdigit() and self.report_json(int(p.name)).is_file())

  def steps(self) -> list[int]:
    """The steps of the checkpoints written here, oldest first."""
    if not self.checkpoints.is_dir():
      return []
    return sorted(int(p.name) for p in self.checkpoints.iterdir() if p.name.isdigit())


@dataclasses.dataclass(frozen=True)
class Workdir:
  """A study's workdir; GANs may live in another (a config's `gan_workdir`)."""
  root: pathlib.Path

  def __post_init__(self):
    object.__setattr__(self, 'root', pathlib.Path(self.root))

  @property
  def config_json(self) -> pathlib.Path:
    return self.root / CONFIG_JSON

  @property
  def timing_json(self) -> pathlib.Path:
    """Seconds per stage of the study and in all ('total'), summed over invocations."""
    return self.root / TIMING_JSON

  @property
  def fake_pool(self) -> pathlib.Path:
    return self.root / 'fake_pool'

  def gan(self, name: str) -> RunDir:
    return RunDir(self.root / name)

  def generator(self, name: str) -> RunDir:
    return RunDir(self.root / 'generators' / name)

  def autoencoder(self, name: str) -> RunDir:
    return RunDir(self.root / 'autoencoders' / name)

  def classifier(self, name: str) -> RunDir:
    return RunDir(self.root / 'classifiers' / name)

  def fusion(self, name: str) -> RunDir:
    """A fusion of detectors (config.fusions.<name>): its weights and reports."""
    return RunDir(self.root / 'fusions' / name)

  def real_only(self, name: str) -> RunDir:
    """A detector trained on reals alone (config.real_only.<name>)."""
    return RunDir(self.root / 'real_only' / name)

  @property
  def quality(self) -> pathlib.Path:
    """The generators' quality: its feature network's run, and the table (JSON, Markdown)."""
    return self.root / 'quality'

  def feature_classifier(self) -> RunDir:
    return RunDir(self.quality / 'feature_classifier')

  def discriminator_reports(self, gan: str) -> RunDir:
    """Where a classifier study writes its evaluation of GAN `gan`'s discriminator."""
    return RunDir(self.root / 'discriminators' / gan)

  def classifier_names(self) -> list[str]:
    """Every classifier with a checkpoint here, by name."""
    folder = self.root / 'classifiers'
    if not folder.is_dir():
      return []
    return sorted(p.name for p in folder.iterdir() if RunDir(p).steps())


def gan_workdir(workdir: Workdir, gan_workdir_key: str) -> Workdir:
  """Where a study's GANs are: `gan_workdir` when the config sets one, else the workdir."""
  return Workdir(pathlib.Path(gan_workdir_key)) if gan_workdir_key else workdir
