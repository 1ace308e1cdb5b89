"""The table of studies: what `experiment` in a config names, read by main, evaluate and the
config check alike. Each study trains its models (`run`) and evaluates a workdir's
checkpoints without training (`evaluate`); no study imports another.
"""

import dataclasses
import pathlib
from collections.abc import Callable

import ml_collections

from fakejax import config as config_lib
from fakejax.studies import autogan, dcgan, dedicated


@dataclasses.dataclass(frozen=True)
class Study:
  run: Callable[[ml_collections.ConfigDict, str | pathlib.Path], dict]
  # (config, Workdir, which steps, mesh) -> the reports it (re)writes.
  evaluate: Callable[..., dict]
  schema: dict  # Every key the study reads, with its type (config.py).
  check: Callable[[ml_collections.ConfigDict, int], None]  # (config, num_devices) -> None.


STUDIES = {
    'dcgan_detectors': Study(dcgan.run, dcgan.evaluate, config_lib.DCGAN_SCHEMA,
                             config_lib.check_dcgan),
    'autogan': Study(autogan.run, autogan.evaluate, config_lib.AUTOGAN_SCHEMA,
                     config_lib.check_autogan),
    'detectors': Study(dedicated.run, dedicated.evaluate, config_lib.DETECTORS_SCHEMA,
                       config_lib.check_detectors),
}


def study_of(config: ml_collections.ConfigDict) -> Study:
  """The study a config's `experiment` names; an unknown one is a ConfigError."""
  experiment = config.get('experiment')
  if experiment not in STUDIES:
    raise config_lib.ConfigError(f"Config key 'experiment' is {experiment!r}; known "
                                 f'experiments: {sorted(STUDIES)}.')
  return STUDIES[experiment]


def validate(config: ml_collections.ConfigDict, *, num_devices: int) -> None:
  """Raises ConfigError naming the key for anything in `config` that cannot run."""
  study = study_of(config)
  config_lib.validate_config(config, study.schema, num_devices=num_devices)
  study.check(config, num_devices)
