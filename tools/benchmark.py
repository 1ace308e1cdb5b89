r"""Train-step and scoring speed of fakejax, beside PyTorch on the same machine.

  python tools/benchmark.py                      # both DCGANs, batch 256, CPU
  python tools/benchmark.py --models=autogan_depth1,autogan_depth4,alexnet,sequential_cnn
  python tools/benchmark.py --models=resnet18 --batch_size=64 --score_calls=1
  python tools/benchmark.py --models=mobilenet_v2,mobilenet_v3_large,efficientnet_b0
  python tools/benchmark.py --models=dcgan_tf --batch_size=64 --rounds=7 --json=bench.json
  python tools/benchmark.py --seeds=1,4,16        # K seeds' replicas trained as one step
  python tools/benchmark.py --device=gpu          # JAX and PyTorch on the first GPU
  python tools/benchmark.py --device=gpu --compute_dtype=bfloat16  # mixed precision, both sides

Models: the two DCGANs, the autoencoder-GAN at depths 1 and 4, and the AlexNet-style,
Sequential CNN, ResNet-18, MobileNetV2, MobileNetV3-Large and EfficientNet-B0
classifiers, each as its config builds it. For each:
images/s of the full train step (a GAN: one D and one G update, Adam) and of inference
(batch 1000: D's scores for a GAN, reconstructions for an autoencoder, P(real) for the
classifier), compile time, XLA's memory estimate of the step, GFLOP per image (XLA's
cost analysis) and the fraction of the device's peak reached (MFU): the rate of a large
matrix product measured on the same device in the compute dtype at JAX's default
precision (TF32 for float32 on recent NVIDIA GPUs), and the CPU's model name. When PyTorch is
installed (`pip install -e '.[bench]'`), the same architectures and the same simultaneous
update run in eager PyTorch, alternating with fakejax round by round (A B A B ...);
medians are reported with the fakejax/PyTorch ratio. The input share is the fraction of
a training loop's time lost to the input pipeline: the same steps fed by the grain
pipeline (one fresh batch per step, as in training) versus a batch already on the device.
Output: a Markdown table, and JSON.
"""

import argparse
import importlib
import json
import math
import statistics
import sys
import time
import pathlib

try:
  # Before JAX: PyTorch's CUDA build crashed in Triton's import (which its optimisers
  # trigger, through torch._dynamo) once JAX was loaded. The CPU build of the bench
  # extra did not. PyTorch stays optional.
  importlib.import_module('torch')
  importlib.import_module('torch._dynamo')
except ImportError:
  pass
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs import autogan_fmnist, dcgan_fmnist, detectors_fmnist  # noqa: E402
from fakejax import runtime, sharding  # noqa: E402
from fakejax.evaluation import scoring  # noqa: E402
from fakejax.data import pipeline  # noqa: E402
from fakejax.models import COMPUTE_DTYPES, build_gan, mobilenets  # noqa: E402
from fakejax.models import flow as flow_model  # noqa: E402
from fakejax.train import (autoencoder_gan, autoencoder_trainer, classifier_steps,  # noqa: E402
                           classifier_trainer, diffusion_steps, gan_state, gan_steps,
                           gan_trainer, generator_state, generator_trainer, likelihood_steps,
                           loop, optimizers, real_only_trainer, replicas, vae_steps)
from fakejax.train.wasserstein_steps import CRITIC_STEPS, PENALTY_WEIGHT  # noqa: E402

SCORE_BATCH = 1000
# The matrix product whose measured rate is the device's practical peak. On a CPU a
# smaller one reaches the same rate (2 cores: 2048^3 in 0.1-0.2 s; 8192^3 would take 10 s).
PEAK_MATMUL_SIZE = 8192
CPU_PEAK_MATMUL_SIZE = 2048


def measured_matmul_gflops(device: jax.Device, dtype: str, size: int = PEAK_MATMUL_SIZE) -> float:
  """The rate of a `size`^3 matrix product on `device`: its practical peak."""
  a, b = (jax.device_put(jax.random.normal(jax.random.PRNGKey(i), (size, size), dtype), device)
          for i in (0, 1))
  product = jax.jit(lambda a, b: a @ b)
  run = lambda: product(a, b).block_until_ready()
  run()  # Compiles.
  return 2 * size**3 / statistics.median(timed(run) for _ in range(10)) / 1e9


def peak(device: jax.Device, compute_dtype: str, given_gflops: float) -> tuple[float, str]:
  """(GFLOP/s, what it is) that the steps' FLOP rates are a fraction of."""
  if given_gflops:
    return given_gflops, 'as given'
  # Measured, not a constant: the CPUs this project runs on have changed kind twice.
  size = CPU_PEAK_MATMUL_SIZE if device.platform == 'cpu' else PEAK_MATMUL_SIZE
  return (measured_matmul_gflops(device, compute_dtype, size),
          f'measured: {size}^3 {compute_dtype} matrix product')


def gan_workload(architecture: str, compute_dtype: str):
  """(init, train step, inference(state, uint8 images), training examples) of a DCGAN."""
  config = getattr(dcgan_fmnist, architecture)()
  models = build_gan(architecture, compute_dtype)
  tx = optimizers.from_config(config.optimizer)
  score = gan_steps.make_score(models)
  return (lambda key: gan_state.init_state(models, tx, config.latent_dim, key),
          gan_trainer.make_train_step(models, tx, config.latent_dim),
          lambda state, images: score(gan_state.discriminator_variables(state), images),
          random_images(60_000))


def autogan_workload(autoencoder_name: str):
  """The autoencoder-GAN of `configs/autogan_fmnist.py`; inference is reconstruction."""
  config = autogan_fmnist.get_config()
  ae_config = config.autoencoders[autoencoder_name]
  autoencoder = autoencoder_trainer.autoencoder_of(ae_config)
  discriminator = build_gan(ae_config.discriminator).discriminator
  tx = optimizers.from_config(ae_config.optimizer)
  step = autoencoder_gan.make_train_step(
      autoencoder, discriminator, tx, reconstruction_loss=ae_config.reconstruction_loss,
      reconstruction_weight=ae_config.reconstruction_weight,
      adversarial_weight=ae_config.adversarial_weight)
  reconstruct = lambda state, images: autoencoder.apply(
      {'params': state.g_params}, gan_steps.to_model_range(images))
  return (lambda key: autoencoder_gan.init_state(autoencoder, discriminator, tx, (28, 28, 1), key),
          step, reconstruct, random_images(60_000))


def generator_workload(name: str):
  """A generator of another family as the zoo trains it on CPUs (its `quick` config);
  inference is sampling (for diffusion, every DDIM step)."""
  gen_config = dcgan_fmnist.GENERATOR_CONFIGS[name]('quick')
  generator = generator_trainer.generator_of(gen_config, (28, 28, 1))
  tx = optimizers.from_config(gen_config.optimizer)
  generate = generator.generate()

  def sample(state, images):
    # Latents from the (random) images, so that each chunk of a call is its own work: from
    # one fixed key, XLA would compute one chunk's samples and reuse them.
    pixels = images.reshape(images.shape[0], -1)[:, :generator.latent_dim]
    latents = pixels.astype(jnp.float32) / 127.5 - 1.0
    return generate(generator_state.sampling_variables(state), latents)

  return (lambda key: generator_trainer.init_state(generator, tx, key),
          generator.steps.make_train_step(generator.model, tx, gen_config.options,
                                          gen_config.ema_decay, False),
          sample, random_images(60_000))


def backbone_config(architecture: str, features: tuple[int, ...] = ()) -> ml_collections.ConfigDict:
  """The dedicated-detector study with an ImageNet backbone at 28x28, from scratch, and
  the transfer-learning head (average pooling, one output)."""
  config = detectors_fmnist.get_config()
  config.classifier.update(architecture=architecture, features=features, hidden=0,
                           dropout_rate=0.0, pooling='average')
  return config


# The config whose classifier each model is: AlexNet-style (autoencoder-GAN study), the
# Sequential CNN, the patch classifier and the backbones (dedicated-detector study;
# ResNet-18 with its small stem at full width).
CLASSIFIER_CONFIGS = {
    'alexnet': autogan_fmnist.get_config,
    'sequential_cnn': detectors_fmnist.get_config,
    'patch_cnn': lambda: detectors_fmnist.get_config('full,patch'),
    'resnet18': lambda: backbone_config('resnet18', (64, 128, 256, 512)),
    'mobilenet_v2': lambda: backbone_config('mobilenet_v2'),
    'mobilenet_v3_large': lambda: backbone_config('mobilenet_v3_large'),
    'efficientnet_b0': lambda: backbone_config('efficientnet_b0'),
}


def classifier_config(model: str) -> ml_collections.ConfigDict:
  return CLASSIFIER_CONFIGS[model]()


def classifier_workload(model: str):
  """A classifier of `classifier_config(model)`, on raw images."""
  config = classifier_config(model)
  classifier = classifier_trainer.classifier_of(config.classifier)
  # No pretrained start, so no mesh to place its weights on.
  job = classifier_trainer.classifier_job(
      'benchmark', config.classifier, classifier, (28, 28, 1), frozen={},
      skip_nonfinite=config.skip_nonfinite_updates, metadata={}, mesh=None)
  score = classifier_steps.make_score(classifier.model, classifier.prepare)
  examples = {'image': random_images(60_000),
              'label': np.random.default_rng(2).integers(0, 2, 60_000).astype(np.int32)}
  return (job.init, job.train_step,
          lambda state, images: score(classifier_steps.variables(state), images), examples)


def real_only_workload():
  """The real-only detector of `detectors_fmnist.py:full,real_only` (a PixelCNN of reals),
  trained on reals; inference is its surprise score."""
  real_only_config = detectors_fmnist.get_config('full,real_only').real_only.pixelcnn_reals
  job = real_only_trainer.real_only_job('benchmark', real_only_config, (28, 28, 1), False)
  score = likelihood_steps.make_score(real_only_trainer.model_of(real_only_config))
  return (job.init, job.train_step,
          lambda state, images: score(classifier_steps.variables(state), images),
          real_only_trainer.train_set(random_images(60_000)))


def random_images(num: int) -> np.ndarray:
  return np.random.default_rng(0).integers(0, 255, (num, 28, 28, 1), np.uint8)


# Model -> its workload, given the compute dtype (float32 for all but MIXED_PRECISION_MODELS).
WORKLOADS = {
    'dcgan_tf': lambda dtype: gan_workload('dcgan_tf', dtype),
    'dcgan_radford': lambda dtype: gan_workload('dcgan_radford', dtype),
    'wgan_gp': lambda dtype: gan_workload('wgan_gp', dtype),
    'vae': lambda _: generator_workload('vae'),
    'ddpm': lambda _: generator_workload('ddpm'),
    'realnvp': lambda _: generator_workload('realnvp'),
    'autogan_depth1': lambda _: autogan_workload('depth1'),
    'autogan_depth4': lambda _: autogan_workload('depth4'),
    'alexnet': lambda _: classifier_workload('alexnet'),
    'sequential_cnn': lambda _: classifier_workload('sequential_cnn'),
    'patch_cnn': lambda _: classifier_workload('patch_cnn'),
    'pixelcnn': lambda _: real_only_workload(),
    **{model: lambda _, model=model: classifier_workload(model)
       for model in ('resnet18', 'mobilenet_v2', 'mobilenet_v3_large', 'efficientnet_b0')},
}
# Images per inference call: SCORE_BATCH but for diffusion, whose sampling runs its
# network once per DDIM step (20 steps of the quick config).
INFERENCE_BATCH = {'ddpm': 100}


def inference_batch(model: str) -> int:
  return INFERENCE_BATCH.get(model, SCORE_BATCH)


# The models whose configs have a compute_dtype (bfloat16: mixed precision).
MIXED_PRECISION_MODELS = ('dcgan_tf', 'dcgan_radford', 'wgan_gp')


def traced_flops(fn, *args) -> float:
  """XLA's count of the operations of `fn(*args)` as lowered for a CPU, before optimisation:
  one count for every backend. (A GPU's compiled program hides its convolutions from the
  count in library calls, and GPU plugins do not count lowered programs.)"""
  cpu = jax.sharding.SingleDeviceSharding(jax.devices('cpu')[0])
  shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=cpu), args)
  analysis = jax.jit(fn).lower(*shapes).cost_analysis()
  return float((analysis[0] if isinstance(analysis, list) else analysis)['flops'])


class JaxRunner:
  """fakejax's jitted train step and inference for one model, on one device."""

  def __init__(self, model: str, batch_size: int, device: jax.Device, compute_dtype: str,
               num_replicas: int = 1, replica_form: str = ''):
    init, train_step, infer, examples = WORKLOADS[model](compute_dtype)
    self.mesh = sharding.build_mesh([device])
    self.num_replicas, self.batch_size = num_replicas, batch_size
    self.batches = pipeline.train_batches(examples, seed=0, num_epochs=1000,
                                          batch_size=batch_size, process_index=0,
                                          process_count=1)
    batch_axis = int(num_replicas > 1)
    if num_replicas > 1:  # As the loop trains several seeds: stacked states and batches.
      seeds = range(num_replicas)
      self.replica_form = replica_form or replicas.form_for(self.mesh)
      job = replicas.replicated_job(loop.Job('benchmark', init, train_step), seeds,
                                    self.replica_form)
      init, train_step = job.init, job.train_step
      batches = self.batches
      self.batches = replicas.ReplicaBatches([batches] * num_replicas)
    self.state = jax.jit(init, out_shardings=sharding.replicated(self.mesh))(
        jax.random.PRNGKey(0))
    self.batch = sharding.global_batch(self.mesh, next(self.batches), batch_axis)
    self.global_batch = lambda: sharding.global_batch(self.mesh, next(self.batches), batch_axis)
    step = jax.jit(train_step,
                   in_shardings=(sharding.replicated(self.mesh),
                                 sharding.batch_sharded(self.mesh, batch_axis)),
                   out_shardings=sharding.replicated(self.mesh), donate_argnums=0)
    start = time.perf_counter()
    self.compiled = step.lower(self.state, self.batch).compile()
    self.compile_seconds = time.perf_counter() - start
    self.flops = traced_flops(train_step, self.state, self.batch)
    self.step = step
    self.train(1)
    if num_replicas > 1:  # Training speed alone.
      return
    infer = jax.jit(scoring.in_chunks(infer, num_shards=1))  # As the evaluation scores.
    self.score_images = jax.device_put(np.random.default_rng(1).integers(
        0, 255, (inference_batch(model), 28, 28, 1), dtype=np.uint8), device)
    self.score = lambda: infer(self.state, self.score_images)
    self.score().block_until_ready()
    self.train_from_pipeline(1)

  def flops_per_image(self) -> float:
    return self.flops / (self.batch_size * self.num_replicas)

  def memory_bytes(self) -> int:
    memory = self.compiled.memory_analysis()
    return int(memory.temp_size_in_bytes + memory.argument_size_in_bytes +
               memory.output_size_in_bytes)

  def train(self, steps: int) -> None:
    for _ in range(steps):
      self.state, metrics = self.step(self.state, self.batch)
    jax.block_until_ready(metrics)

  def train_from_pipeline(self, steps: int) -> None:
    """As in training: each step's batch comes from the grain pipeline."""
    for _ in range(steps):
      self.state, metrics = self.step(self.state, self.global_batch())
    jax.block_until_ready(metrics)

  def run_score(self, calls: int) -> None:
    for _ in range(calls):
      out = self.score()
    out.block_until_ready()


def torch_models(architecture: str):
  """The same two DCGANs in PyTorch (NCHW), with their Adam settings (lr, betas)."""
  from torch import nn  # pylint: disable=g-import-not-at-top

  class Reshape(nn.Module):
    def forward(self, x):
      return x.view(-1, 256, 7, 7)

  if architecture == 'dcgan_tf':
    generator = nn.Sequential(
        nn.Linear(100, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256, eps=1e-3),
        nn.LeakyReLU(0.3), Reshape(),
        nn.ConvTranspose2d(256, 128, 5, 1, padding=2, bias=False), nn.BatchNorm2d(128, eps=1e-3),
        nn.LeakyReLU(0.3),
        nn.ConvTranspose2d(128, 64, 5, 2, padding=2, output_padding=1, bias=False),
        nn.BatchNorm2d(64, eps=1e-3), nn.LeakyReLU(0.3),
        nn.ConvTranspose2d(64, 1, 5, 2, padding=2, output_padding=1, bias=False), nn.Tanh())
    discriminator = nn.Sequential(
        nn.Conv2d(1, 64, 5, 2, padding=2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
        nn.Conv2d(64, 128, 5, 2, padding=2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
        nn.Flatten(), nn.Linear(7 * 7 * 128, 1))
    lr, betas = 1e-4, (0.9, 0.999)
  else:
    generator = nn.Sequential(
        nn.Linear(100, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256), nn.ReLU(),
        Reshape(), nn.ConvTranspose2d(256, 128, 4, 2, padding=1, bias=False),
        nn.BatchNorm2d(128), nn.ReLU(), nn.ConvTranspose2d(128, 1, 4, 2, padding=1), nn.Tanh())
    discriminator = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, padding=1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 7), nn.Flatten())
    lr, betas = 2e-4, (0.5, 0.999)
  return generator, discriminator, lr, betas


def torch_wgan_gp():
  """WGAN-GP's generator and critic in PyTorch; the critic pads as 'SAME' does (1, 2)."""
  from torch import nn  # pylint: disable=g-import-not-at-top

  class Reshape(nn.Module):
    def forward(self, x):
      return x.view(-1, 256, 7, 7)

  generator = nn.Sequential(
      nn.Linear(128, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256, momentum=0.1),
      nn.ReLU(), Reshape(), nn.ConvTranspose2d(256, 128, 4, 2, padding=1, bias=False),
      nn.BatchNorm2d(128), nn.ReLU(), nn.ConvTranspose2d(128, 1, 4, 2, padding=1), nn.Tanh())
  critic = nn.Sequential(
      nn.Conv2d(1, 64, 4, 2, padding=1), nn.LeakyReLU(0.2),
      nn.Conv2d(64, 128, 4, 2, padding=1), nn.LeakyReLU(0.2),
      nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(128, 256, 4, 2), nn.LeakyReLU(0.2),
      nn.Flatten(), nn.Linear(256 * 4 * 4, 1))
  return generator, critic


def torch_autoencoder(depth: int, base_features: int, latent_features: int):
  """fakejax's AutoEncoder in PyTorch: edge padding, strided convolutions, transposed ones."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  from fakejax.models.autoencoder import stage_features  # pylint: disable=g-import-not-at-top
  widths = stage_features(depth, base_features, latent_features)
  layers, channels = [], 1
  for stage, width in enumerate(widths):
    layers.append(nn.Conv2d(channels, width, 4, 2, padding=1))
    if stage < depth - 1:
      layers.append(nn.LeakyReLU(0.2))
    channels = width
  for width in reversed(widths[:-1]):
    layers += [nn.ConvTranspose2d(channels, width, 4, 2, padding=1), nn.ReLU()]
    channels = width
  layers += [nn.ConvTranspose2d(channels, 1, 4, 2, padding=1), nn.Tanh()]
  network = nn.Sequential(*layers)
  pad = -28 % 2**depth
  low, high = pad // 2, pad - pad // 2

  class AutoEncoder(nn.Module):
    def __init__(self):
      super().__init__()
      self.network = network

    def forward(self, x):
      padded = torch.nn.functional.pad(x, (low, high, low, high), mode='replicate')
      return self.network(padded)[:, :, low:low + 28, low:low + 28]

  return AutoEncoder()


def torch_alexnet(features, hidden: int, dropout_rate: float):
  """fakejax's AlexNetClassifier in PyTorch."""
  from torch import nn  # pylint: disable=g-import-not-at-top
  layers, channels = [], 1
  for index, (width, kernel) in enumerate(zip(features, (5, 5, 3, 3, 3))):
    layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2), nn.ReLU()]
    if index in (0, 1, 4):
      layers.append(nn.MaxPool2d(2))
    channels = width
  layers += [nn.Flatten(), nn.Linear(channels * 3 * 3, hidden), nn.ReLU(), nn.Dropout(dropout_rate),
             nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout_rate), nn.Linear(hidden, 1)]
  return nn.Sequential(*layers)


def torch_sequential_cnn(features, hidden: int, dropout_rate: float):
  """fakejax's SequentialCNN in PyTorch."""
  from torch import nn  # pylint: disable=g-import-not-at-top
  layers, channels, size = [], 1, 28
  for index, (width, repeats) in enumerate(zip(features, (2, 2, 1))):
    for _ in range(repeats):
      layers += [nn.Conv2d(channels, width, 3), nn.ReLU()]
      channels, size = width, size - 2
    layers += [nn.MaxPool2d(2), nn.BatchNorm2d(channels)]
    size //= 2
    if index > 0:
      layers.append(nn.Dropout(dropout_rate))
  layers += [nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.ReLU(),
             nn.BatchNorm1d(hidden), nn.Dropout(dropout_rate), nn.Linear(hidden, 1)]
  return nn.Sequential(*layers)


def torch_patch_cnn(features, hidden: int, dropout_rate: float):
  """fakejax's PatchCNN in PyTorch: 1x1 convolutions score every patch; the mean."""
  from torch import nn  # pylint: disable=g-import-not-at-top
  layers, channels = [], 1
  for width in features:
    layers += [nn.Conv2d(channels, width, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    channels = width
  layers += [nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Dropout(dropout_rate),
             nn.Conv2d(hidden, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
  return nn.Sequential(*layers)


def torch_pooled_head(channels: int, hidden: int, dropout_rate: float) -> list:
  from torch import nn  # pylint: disable=g-import-not-at-top
  dense = [nn.Linear(channels, hidden), nn.ReLU()] if hidden else []
  return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), *dense, nn.Dropout(dropout_rate),
          nn.Linear(hidden or channels, 1)]


def torch_resnet18(features, hidden: int, dropout_rate: float):
  """fakejax's ResNet-18 for small images (3x3/1 stem, no pooling) in PyTorch."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  class Block(nn.Module):
    def __init__(self, in_features, out_features, stride):
      super().__init__()
      self.body = nn.Sequential(
          nn.Conv2d(in_features, out_features, 3, stride, 1, bias=False),
          nn.BatchNorm2d(out_features), nn.ReLU(),
          nn.Conv2d(out_features, out_features, 3, 1, 1, bias=False),
          nn.BatchNorm2d(out_features))
      nn.init.zeros_(self.body[-1].weight)  # As fakejax: each block starts as the identity.
      self.projection = nn.Identity()
      if in_features != out_features or stride != 1:
        self.projection = nn.Sequential(
            nn.Conv2d(in_features, out_features, 1, stride, bias=False),
            nn.BatchNorm2d(out_features))

    def forward(self, x):
      return torch.relu(self.projection(x) + self.body(x))

  layers = [nn.Conv2d(1, features[0], 3, 1, 1, bias=False), nn.BatchNorm2d(features[0]),
            nn.ReLU()]
  channels = features[0]
  for stage, width in enumerate(features):
    for block in range(2):
      layers.append(Block(channels, width, 2 if stage > 0 and block == 0 else 1))
      channels = width
  return nn.Sequential(*layers, *torch_pooled_head(channels, hidden, dropout_rate))


def torch_inverted_residual_parts():
  """PyTorch pieces of the inverted-residual backbones, in fakejax's (Keras's) layout."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  def conv_norm(channels_in, channels_out, kernel, stride=1, groups=1, activation=None):
    layers = [nn.Conv2d(channels_in, channels_out, kernel, stride, (kernel - 1) // 2,
                        groups=groups, bias=False),
              nn.BatchNorm2d(channels_out, eps=mobilenets.KERAS_BATCH_NORM_EPSILON)]
    return nn.Sequential(*layers, *([activation()] if activation else []))

  class SqueezeExcite(nn.Module):
    def __init__(self, channels, squeezed, activation, gate):
      super().__init__()
      self.reduce, self.expand = nn.Conv2d(channels, squeezed, 1), nn.Conv2d(squeezed, channels, 1)
      self.activation, self.gate = activation(), gate()

    def forward(self, x):
      return x * self.gate(self.expand(self.activation(self.reduce(x.mean((2, 3), keepdim=True)))))

  class Residual(nn.Module):
    """x + body(x) where shapes allow; stochastic depth drops the branch per example."""
    def __init__(self, layers, residual, drop_rate=0.0):
      super().__init__()
      self.body, self.residual, self.drop_rate = nn.Sequential(*layers), residual, drop_rate

    def forward(self, x):
      y = self.body(x)
      if not self.residual:
        return y
      if self.training and self.drop_rate:
        keep = torch.rand(y.shape[0], 1, 1, 1, device=y.device) >= self.drop_rate
        y = y * keep / (1 - self.drop_rate)
      return x + y

  return conv_norm, SqueezeExcite, Residual


def torch_mobilenet_v2(features, hidden: int, dropout_rate: float):
  """fakejax's MobileNetV2 (1-channel input) in PyTorch."""
  from torch import nn  # pylint: disable=g-import-not-at-top
  assert not features, 'MobileNetV2 has its published widths.'
  conv_norm, _, Residual = torch_inverted_residual_parts()
  layers, channels = [conv_norm(1, 32, 3, 2, activation=nn.ReLU6)], 32
  for expansion, width, repeats, first_stride in mobilenets.MobileNetV2.STAGES:
    for repeat in range(repeats):
      stride, expanded = first_stride if repeat == 0 else 1, expansion * channels
      width = mobilenets.make_divisible(width)
      first_block = len(layers) == 1  # The only block without an expanding convolution.
      body = [] if first_block else [conv_norm(channels, expanded, 1, activation=nn.ReLU6)]
      body += [conv_norm(expanded, expanded, 3, stride, expanded, nn.ReLU6),
               conv_norm(expanded, width, 1)]
      layers.append(Residual(body, stride == 1 and channels == width))
      channels = width
  layers.append(conv_norm(channels, 1280, 1, activation=nn.ReLU6))
  return nn.Sequential(*layers, *torch_pooled_head(1280, hidden, dropout_rate))


def torch_mobilenet_v3_large(features, hidden: int, dropout_rate: float):
  """fakejax's MobileNetV3-Large (1-channel input) in PyTorch."""
  from torch import nn  # pylint: disable=g-import-not-at-top
  assert not features, 'MobileNetV3-Large has its published widths.'
  conv_norm, SqueezeExcite, Residual = torch_inverted_residual_parts()
  layers, channels = [conv_norm(1, 16, 3, 2, activation=nn.Hardswish)], 16
  for block_id, (expansion, width, kernel, stride, squeeze_excite, hard_swish) in enumerate(
      mobilenets.MobileNetV3Large.BLOCKS):
    activation = nn.Hardswish if hard_swish else nn.ReLU
    expanded = mobilenets.make_divisible(channels * expansion)
    body = [conv_norm(channels, expanded, 1, activation=activation)] if block_id else []
    body.append(conv_norm(expanded, expanded, kernel, stride, expanded, activation))
    if squeeze_excite:
      body.append(SqueezeExcite(expanded, mobilenets.make_divisible(expanded * 0.25), nn.ReLU,
                                nn.Hardsigmoid))
    body.append(conv_norm(expanded, width, 1))
    layers.append(Residual(body, stride == 1 and channels == width))
    channels = width
  last = mobilenets.make_divisible(channels * 6)
  layers.append(conv_norm(channels, last, 1, activation=nn.Hardswish))
  return nn.Sequential(*layers, *torch_pooled_head(last, hidden, dropout_rate))


def torch_efficientnet_b0(features, hidden: int, dropout_rate: float):
  """fakejax's EfficientNet-B0 (1-channel input) in PyTorch."""
  from torch import nn  # pylint: disable=g-import-not-at-top
  assert not features, 'EfficientNet-B0 has its published widths.'
  conv_norm, SqueezeExcite, Residual = torch_inverted_residual_parts()
  layers = [conv_norm(1, 32, 3, 2, activation=nn.SiLU)]
  stages = mobilenets.EfficientNetB0.STAGES
  num_blocks, block_index = sum(stage[1] for stage in stages), 0
  for kernel, repeats, width_in, width_out, expansion, first_stride in stages:
    for repeat in range(repeats):
      channels, stride = (width_in, first_stride) if repeat == 0 else (width_out, 1)
      expanded = channels * expansion
      body = [conv_norm(channels, expanded, 1, activation=nn.SiLU)] if expansion != 1 else []
      body += [conv_norm(expanded, expanded, kernel, stride, expanded, nn.SiLU),
               SqueezeExcite(expanded, max(1, int(channels * 0.25)), nn.SiLU, nn.Sigmoid),
               conv_norm(expanded, width_out, 1)]
      drop_rate = mobilenets.EfficientNetB0.drop_connect_rate * block_index / num_blocks
      layers.append(Residual(body, stride == 1 and channels == width_out, drop_rate))
      block_index += 1
  layers.append(conv_norm(stages[-1][3], 1280, 1, activation=nn.SiLU))
  return nn.Sequential(*layers, *torch_pooled_head(1280, hidden, dropout_rate))


def torch_vae(features, latent_dim: int):
  """models/vae.py's Vae: strided 4x4 convolutions down, nearest x2 + 3x3 convolutions up."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  class Vae(nn.Module):
    def __init__(self):
      super().__init__()
      narrow, wide = features
      self.encoder = nn.Sequential(
          nn.Conv2d(1, narrow, 4, 2, padding=1), nn.LeakyReLU(0.2),
          nn.Conv2d(narrow, wide, 4, 2, padding=1), nn.LeakyReLU(0.2), nn.Flatten())
      self.mean, self.log_variance = (nn.Linear(7 * 7 * wide, latent_dim) for _ in range(2))
      self.project = nn.Linear(latent_dim, 7 * 7 * wide)
      self.decoder = nn.Sequential(
          nn.Upsample(scale_factor=2), nn.Conv2d(wide, wide, 3, padding=1), nn.ReLU(),
          nn.Upsample(scale_factor=2), nn.Conv2d(wide, narrow, 3, padding=1), nn.ReLU(),
          nn.Conv2d(narrow, 1, 3, padding=1), nn.Tanh())
      self.wide = wide

    def encode(self, x):
      h = self.encoder(x)
      return self.mean(h), self.log_variance(h)

    def decode(self, z):
      return self.decoder(torch.relu(self.project(z)).view(-1, self.wide, 7, 7))
  return Vae()


def torch_unet(features):
  """models/unet.py's NoiseUNet in PyTorch; strided convolutions pad as 'SAME' does (0, 1)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  silu, embed_dim = nn.functional.silu, 4 * features[0]

  class Block(nn.Module):
    def __init__(self, inputs, outputs):
      super().__init__()
      self.norm1, self.conv1 = nn.GroupNorm(8, inputs), nn.Conv2d(inputs, outputs, 3, padding=1)
      self.embed = nn.Linear(embed_dim, outputs)
      self.norm2, self.conv2 = nn.GroupNorm(8, outputs), nn.Conv2d(outputs, outputs, 3, padding=1)
      self.skip = nn.Conv2d(inputs, outputs, 1) if inputs != outputs else nn.Identity()

    def forward(self, x, embedding):
      h = self.conv1(silu(self.norm1(x))) + self.embed(silu(embedding))[:, :, None, None]
      return self.skip(x) + self.conv2(silu(self.norm2(h)))

  class UNet(nn.Module):
    def __init__(self):
      super().__init__()
      widths = tuple(features)
      self.time1, self.time2 = nn.Linear(widths[0], embed_dim), nn.Linear(embed_dim, embed_dim)
      self.stem = nn.Conv2d(1, widths[0], 3, padding=1)
      self.down_blocks = nn.ModuleList(Block(w, w) for w in widths)
      self.downs = nn.ModuleList(nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(a, b, 3, 2))
                                 for a, b in zip(widths[:-1], widths[1:]))
      self.middle = Block(widths[-1], widths[-1])
      ups = list(reversed(widths[:-1]))
      self.ups = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1)
                               for a, b in zip([widths[-1], *ups[:-1]], ups))
      self.up_blocks = nn.ModuleList(Block(2 * w, w) for w in ups)
      self.norm, self.out = nn.GroupNorm(8, widths[0]), nn.Conv2d(widths[0], 1, 3, padding=1)

    def forward(self, x, timesteps):
      half = self.time1.in_features // 2
      frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=x.device) / half)
      angles = timesteps.float()[:, None] * frequencies[None]
      embedding = self.time2(silu(self.time1(torch.cat([angles.sin(), angles.cos()], -1))))
      x, skips = self.stem(x), []
      for level, block in enumerate(self.down_blocks):
        x = block(x, embedding)
        if level < len(self.downs):
          skips.append(x)
          x = self.downs[level](x)
      x = self.middle(x, embedding)
      for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips)):
        x = up(nn.functional.interpolate(x, scale_factor=2, mode='nearest'))
        x = block(torch.cat([x, skip], 1), embedding)
      return self.out(silu(self.norm(x)))
  return UNet()


def torch_pixelcnn(features: int, num_layers: int):
  """fakejax's PixelCnn: masked 7x7 ("A") then residual masked 3x3 ("B"), 256 levels."""
  import torch  # pylint: disable=g-import-not-at-top

  class MaskedConv(torch.nn.Conv2d):
    def __init__(self, channels_in, channels_out, kernel, include_centre):
      super().__init__(channels_in, channels_out, kernel, padding=kernel // 2)
      mask = torch.zeros_like(self.weight)  # [out, in, k, k]
      mask[:, :, :kernel // 2] = 1
      mask[:, :, kernel // 2, :kernel // 2 + int(include_centre)] = 1
      self.register_buffer('mask', mask)

    def forward(self, x):
      return torch.nn.functional.conv2d(x, self.weight * self.mask, self.bias,
                                        padding=self.padding)

  class PixelCnn(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.stem = MaskedConv(1, features, 7, False)
      self.layers = torch.nn.ModuleList(MaskedConv(features, features, 3, True)
                                        for _ in range(num_layers))
      self.head = torch.nn.Conv2d(features, 256, 1)

    def forward(self, x):  # -> logits [B, 256, H, W]
      h = self.stem(x).relu()
      for layer in self.layers:
        h = h + layer(h).relu()
      return self.head(h)
  return PixelCnn()


def torch_realnvp(hidden: int, steps_per_level: int):
  """models/flow.py's RealNvp in PyTorch (NHWC inside, as the squeeze there)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  def squeeze(x):  # [B, H, W, C] -> [B, H/2, W/2, 4C]
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(
        b, h // 2, w // 2, 4 * c)

  def unsqueeze(x):
    b, h, w, c = x.shape
    return x.reshape(b, h, w, 2, 2, c // 4).permute(0, 1, 3, 2, 4, 5).reshape(
        b, 2 * h, 2 * w, c // 4)

  class Step(nn.Module):
    """ActNorm, then an affine coupling (NCHW convolutions on NHWC tensors)."""

    def __init__(self, channels):
      super().__init__()
      self.log_scale = nn.Parameter(torch.zeros(channels))
      self.bias = nn.Parameter(torch.zeros(channels))
      half = channels // 2
      self.net = nn.Sequential(nn.Conv2d(half, hidden, 3, padding=1), nn.ReLU(),
                               nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                               nn.Conv2d(hidden, 2 * half, 3, padding=1))

    def coupling(self, kept):
      h = self.net(kept.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
      shift, raw_scale = h.chunk(2, -1)
      return shift, torch.sigmoid(raw_scale + 2)

    def forward(self, x):
      x = x * self.log_scale.exp() + self.bias
      kept, changed = x.chunk(2, -1)
      shift, scale = self.coupling(kept)
      log_det = x.shape[1] * x.shape[2] * self.log_scale.sum() + scale.log().sum((1, 2, 3))
      return torch.cat([kept, (changed + shift) * scale], -1), log_det

    def inverse(self, x):
      kept, changed = x.chunk(2, -1)
      shift, scale = self.coupling(kept)
      x = torch.cat([kept, changed / scale - shift], -1)
      return (x - self.bias) * (-self.log_scale).exp()

  class RealNvp(nn.Module):
    def __init__(self):
      super().__init__()
      self.levels = nn.ModuleList(nn.ModuleList(Step(channels) for _ in range(steps_per_level))
                                  for channels in (4, 8))

    def run_level(self, level, x):
      log_det = 0
      for step in self.levels[level]:
        x, step_log_det = step(x)
        x, log_det = x.flip(-1), log_det + step_log_det
      return x, log_det

    def forward(self, logits):  # [B, 1, 28, 28]
      x, log_det = self.run_level(0, squeeze(logits.permute(0, 2, 3, 1)))
      leaving, x = x.chunk(2, -1)
      x, more = self.run_level(1, squeeze(x))
      return torch.cat([leaving.flatten(1), x.flatten(1)], 1), log_det + more

    def inverse(self, latents):
      b = len(latents)
      leaving, x = latents[:, :392].reshape(b, 14, 14, 2), latents[:, 392:].reshape(b, 7, 7, 8)
      for level in (1, 0):
        for step in reversed(self.levels[level]):
          x = step.inverse(x.flip(-1))
        if level == 1:
          x = torch.cat([leaving, unsqueeze(x)], -1)
      return unsqueeze(x).permute(0, 3, 1, 2).sigmoid()
  return RealNvp()


TORCH_CLASSIFIERS = {'alexnet': torch_alexnet, 'sequential_cnn': torch_sequential_cnn,
                     'patch_cnn': torch_patch_cnn,
                     'resnet18': torch_resnet18, 'mobilenet_v2': torch_mobilenet_v2,
                     'mobilenet_v3_large': torch_mobilenet_v3_large,
                     'efficientnet_b0': torch_efficientnet_b0}


class TorchRunner:
  """The same train step and inference in eager PyTorch."""

  def __init__(self, model: str, batch_size: int, threads: int, device: str, compute_dtype: str):
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(threads)
    self.torch = torch
    self.device = torch.device('cuda' if device == 'gpu' else 'cpu')
    # bfloat16: PyTorch's own mixed precision (autocast) around every forward pass.
    self.autocast = lambda: torch.autocast(self.device.type, dtype=torch.bfloat16,
                                           enabled=compute_dtype == 'bfloat16')
    self.batch_size = batch_size
    self.bce = torch.nn.BCEWithLogitsLoss()
    self.real = torch.rand(batch_size, 1, 28, 28, device=self.device) * 2 - 1
    self.score_images = torch.rand(inference_batch(model), 1, 28, 28, device=self.device) * 2 - 1
    self.infer = lambda: self.inference_model(self.score_images)
    config = autogan_fmnist.get_config()
    if model in dcgan_fmnist.GENERATOR_CONFIGS:
      self._setup_generator(model, dcgan_fmnist.GENERATOR_CONFIGS[model]('quick'))
    elif model == 'wgan_gp':
      self._setup_wgan_gp(*torch_wgan_gp(), dcgan_fmnist.wgan_gp().optimizer)
      self.inference_model = self.d
    elif model.startswith('dcgan'):
      g, d, lr, betas = torch_models(model)
      self._setup_pair(g, d, lr, betas, lambda: torch.randn(batch_size, 100, device=self.device))
      self.inference_model = self.d
    elif model.startswith('autogan'):
      ae_config = config.autoencoders[model.split('_')[1]]
      ae = torch_autoencoder(ae_config.depth, ae_config.base_features, ae_config.latent_features)
      _, d, _, _ = torch_models(ae_config.discriminator)
      optimizer = ae_config.optimizer
      self._setup_pair(ae, d, optimizer.learning_rate, (optimizer.b1, optimizer.b2),
                       lambda: self.real, ae_config.reconstruction_weight,
                       ae_config.adversarial_weight)
      self.inference_model = self.g
    elif model == 'pixelcnn':
      self._setup_pixelcnn()
    else:
      classifier = classifier_config(model).classifier
      self.inference_model = TORCH_CLASSIFIERS[model](
          classifier.features, classifier.hidden, classifier.dropout_rate).to(self.device)
      self.opt = torch.optim.Adam(self.inference_model.parameters(),
                                  classifier.optimizer.learning_rate,
                                  (classifier.optimizer.b1, classifier.optimizer.b2))
      self.labels = torch.randint(0, 2, (batch_size, 1), device=self.device).float()
      self.step = self._classifier_step
    self.train(1)

  def _setup_pair(self, g, d, lr, betas, g_input, reconstruction_weight=0.0,
                  adversarial_weight=1.0):
    """The simultaneous update of a producer (generator or autoencoder) and D."""
    torch = self.torch
    self.g, self.d = g.to(self.device), d.to(self.device)
    self.g_opt = torch.optim.Adam(self.g.parameters(), lr, betas)
    self.d_opt = torch.optim.Adam(self.d.parameters(), lr, betas)

    def step():
      with self.autocast():
        fake = self.g(g_input())
        real_logits, fake_logits = self.d(self.real), self.d(fake)
      d_loss = (self.bce(real_logits, torch.ones_like(real_logits)) +
                self.bce(fake_logits, torch.zeros_like(fake_logits)))
      g_loss = adversarial_weight * self.bce(fake_logits, torch.ones_like(fake_logits))
      if reconstruction_weight:
        g_loss = g_loss + reconstruction_weight * (fake - self.real).abs().mean()
      d_grads = torch.autograd.grad(d_loss, list(self.d.parameters()), retain_graph=True)
      g_grads = torch.autograd.grad(g_loss, list(self.g.parameters()))
      for params, grads, opt in ((self.d.parameters(), d_grads, self.d_opt),
                                 (self.g.parameters(), g_grads, self.g_opt)):
        for p, grad in zip(params, grads):
          p.grad = grad
        opt.step()
    self.step = step

  def _setup_wgan_gp(self, g, d, optimizer):
    """wasserstein_steps.train_step: the critic with its gradient penalty every step, the
    generator every CRITIC_STEPS steps."""
    torch = self.torch
    self.g, self.d = g.to(self.device), d.to(self.device)
    self.g_opt = torch.optim.Adam(self.g.parameters(), optimizer.learning_rate,
                                  (optimizer.b1, optimizer.b2))
    self.d_opt = torch.optim.Adam(self.d.parameters(), optimizer.learning_rate,
                                  (optimizer.b1, optimizer.b2))
    steps = iter(range(10**9))

    def step():
      latents = torch.randn(self.batch_size, 128, device=self.device)
      with torch.no_grad():
        fake = self.g(latents)
      share = torch.rand(self.batch_size, 1, 1, 1, device=self.device)
      mix = (share * self.real + (1 - share) * fake).requires_grad_(True)
      (grads,) = torch.autograd.grad(self.d(mix).sum(), mix, create_graph=True)
      penalty = ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()
      d_loss = self.d(fake).mean() - self.d(self.real).mean() + PENALTY_WEIGHT * penalty
      self.d_opt.zero_grad()
      d_loss.backward()
      self.d_opt.step()
      if next(steps) % CRITIC_STEPS == CRITIC_STEPS - 1:
        self.g_opt.zero_grad()
        (-self.d(self.g(latents)).mean()).backward()
        self.g_opt.step()
    self.step = step

  def _setup_generator(self, model: str, gen_config: ml_collections.ConfigDict):
    """A VAE's negative ELBO or diffusion's noise loss, Adam; inference samples."""
    torch = self.torch
    if model == 'vae':
      self.inference_model = torch_vae(gen_config.features,
                                       gen_config.options.latent_dim).to(self.device)
      loss, self.infer = self._vae_functions(gen_config.options.latent_dim)
    elif model == 'realnvp':
      self.inference_model = torch_realnvp(gen_config.features[0],
                                           gen_config.options.steps_per_level).to(self.device)
      loss, self.infer = self._flow_functions(gen_config.options.temperature)
    else:
      self.inference_model = torch_unet(gen_config.features).to(self.device)
      loss, self.infer = self._diffusion_functions(gen_config.options)
    optimizer = gen_config.optimizer
    self.opt = torch.optim.Adam(self.inference_model.parameters(), optimizer.learning_rate,
                                (optimizer.b1, optimizer.b2))

    def step():
      self.opt.zero_grad()
      loss().backward()
      self.opt.step()
    self.step = step

  def _setup_pixelcnn(self):
    """Cross-entropy of each pixel's grey level; inference is the surprise score."""
    torch = self.torch
    real_only_config = detectors_fmnist.get_config('full,real_only').real_only.pixelcnn_reals
    self.inference_model = torch_pixelcnn(real_only_config.features,
                                          real_only_config.num_layers).to(self.device)
    optimizer = real_only_config.optimizer
    self.opt = torch.optim.Adam(self.inference_model.parameters(), optimizer.learning_rate,
                                (optimizer.b1, optimizer.b2))
    levels = ((self.real + 1) * 127.5).round().long()[:, 0]
    score_levels = ((self.score_images + 1) * 127.5).round().long()[:, 0]

    def step():
      self.opt.zero_grad()
      torch.nn.functional.cross_entropy(self.inference_model(self.real), levels).backward()
      self.opt.step()

    def surprise_score():
      log_probs = self.inference_model(self.score_images).log_softmax(1) / -math.log(2)
      probs = (-log_probs * math.log(2)).exp()
      entropy = (probs * log_probs).sum(1)
      variance = (probs * log_probs ** 2).sum(1) - entropy ** 2
      cost = log_probs.gather(1, score_levels[:, None])[:, 0]
      z = (cost - entropy).sum((1, 2)) / (variance.sum((1, 2)) + 1e-6).sqrt()
      return 1 / (1 + z.abs())
    self.step, self.infer = step, surprise_score

  def _vae_functions(self, latent_dim: int):
    torch, vae = self.torch, self.inference_model

    def loss():
      mean, log_variance = vae.encode(self.real)
      latents = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
      error = ((vae.decode(latents) - self.real) ** 2).sum((1, 2, 3)) / (
          2 * vae_steps.DECODER_SCALE ** 2)
      kl = 0.5 * (mean ** 2 + log_variance.exp() - 1 - log_variance).sum(1)
      return (error + kl).mean()
    sample = lambda: vae.decode(torch.randn(len(self.score_images), latent_dim,
                                            device=self.device))
    return loss, sample

  def _flow_functions(self, temperature: float):
    """flow_steps: bits per dimension of dequantised logits; sampling by the inverse map."""
    torch, flow, margin = self.torch, self.inference_model, flow_model.LOGIT_MARGIN
    images = ((self.real + 1) * 127.5).round()

    def loss():
      p = margin + (1 - 2 * margin) * (images + torch.rand_like(images)) / 256
      logits = p.log() - (-p).log1p()
      latents, log_det = flow(logits)
      log_det = log_det + (math.log(1 - 2 * margin) - math.log(256) - p.log() -
                           (-p).log1p()).sum((1, 2, 3))
      log_prior = -0.5 * (latents ** 2 + math.log(2 * math.pi)).sum(1)
      return -(log_prior + log_det).mean() / (latents.shape[1] * math.log(2))
    sample = lambda: flow.inverse(temperature * torch.randn(
        len(self.score_images), 784, device=self.device))
    return loss, sample

  def _diffusion_functions(self, options: ml_collections.ConfigDict):
    """DDPM's noise loss; DDIM sampling (eta 0) over the config's steps, as diffusion_steps."""
    torch, unet = self.torch, self.inference_model
    signal = torch.tensor(diffusion_steps.alphas_cumprod(options.noise_schedule,
                                                         options.num_timesteps),
                          dtype=torch.float32, device=self.device)
    steps, next_steps = diffusion_steps.ddim_timesteps(options.num_timesteps,
                                                       options.sampling_steps)

    def loss():
      t = torch.randint(0, options.num_timesteps, (self.batch_size,), device=self.device)
      noise = torch.randn_like(self.real)
      kept = signal[t][:, None, None, None]
      noisy = kept.sqrt() * self.real + (1 - kept).sqrt() * noise
      return ((unet(noisy, t) - noise) ** 2).mean()

    def sample():
      x = torch.randn_like(self.score_images)
      for step, next_step in zip(steps.tolist(), next_steps.tolist()):
        a = signal[step]
        a_next = signal[next_step] if next_step >= 0 else torch.ones_like(a)
        noise = unet(x, torch.full((len(x),), step, device=self.device))
        clean = ((x - (1 - a).sqrt() * noise) / a.sqrt()).clamp(-1, 1)
        noise = (x - a.sqrt() * clean) / (1 - a).sqrt()
        x = a_next.sqrt() * clean + (1 - a_next).sqrt() * noise
      return x
    return loss, sample

  def _classifier_step(self):
    self.opt.zero_grad()
    self.bce(self.inference_model(self.real), self.labels).backward()
    self.opt.step()

  def synchronize(self) -> None:
    if self.device.type == 'cuda':
      self.torch.cuda.synchronize()

  def train(self, steps: int) -> None:
    for _ in range(steps):
      self.step()
    self.synchronize()

  def run_score(self, calls: int) -> None:
    self.inference_model.eval()
    with self.torch.no_grad(), self.autocast():
      for _ in range(calls):
        self.infer()
    self.synchronize()
    self.inference_model.train()


def timed(fn, *args) -> float:
  start = time.perf_counter()
  fn(*args)
  return time.perf_counter() - start


def benchmark(architecture: str, device: jax.Device, peak_gflops: float, args) -> dict:
  jax_runner = JaxRunner(architecture, args.batch_size, device, args.compute_dtype)
  torch_runner = None
  if not args.no_torch:
    try:
      torch_runner = TorchRunner(architecture, args.batch_size, args.threads, device.platform,
                                 args.compute_dtype)
    except ImportError:
      print('PyTorch is not installed: fakejax alone (pip install -e ".[bench]").',
            file=sys.stderr)
  rates = {'jax_train': [], 'torch_train': [], 'jax_score': [], 'torch_score': [],
           'jax_train_from_pipeline': []}
  for _ in range(args.rounds):  # Alternate, so that drifts in machine speed hit both.
    rates['jax_train'].append(args.steps * args.batch_size / timed(jax_runner.train, args.steps))
    rates['jax_train_from_pipeline'].append(
        args.steps * args.batch_size / timed(jax_runner.train_from_pipeline, args.steps))
    if torch_runner:
      rates['torch_train'].append(
          args.steps * args.batch_size / timed(torch_runner.train, args.steps))
    images = args.score_calls * inference_batch(architecture)
    rates['jax_score'].append(images / timed(jax_runner.run_score, args.score_calls))
    if torch_runner:
      rates['torch_score'].append(images / timed(torch_runner.run_score, args.score_calls))
  median = {k: statistics.median(v) if v else None for k, v in rates.items()}
  flops = jax_runner.flops_per_image()
  return {
      'model': architecture, 'compute_dtype': args.compute_dtype, 'batch_size': args.batch_size,
      'device': runtime.device_description(device),
      'train_img_per_s': median['jax_train'],
      'input_share': max(0.0, 1 - median['jax_train_from_pipeline'] / median['jax_train']),
      'torch_train_img_per_s': median['torch_train'],
      'score_img_per_s': median['jax_score'], 'torch_score_img_per_s': median['torch_score'],
      'compile_s': jax_runner.compile_seconds, 'step_memory_mb': jax_runner.memory_bytes() / 2**20,
      'gflop_per_image': flops / 1e9,
      'peak_gflops': peak_gflops,
      'peak_fraction': median['jax_train'] * flops / 1e9 / peak_gflops,
      'rounds': rates,
  }


def benchmark_seeds(architecture: str, device: jax.Device, peak_gflops: float, args) -> list[dict]:
  """Train img/s of K replicas trained as one step (as `config.seeds`), for each K of
  `--seeds`, beside K PyTorch models stepped one after another, alternating round by round."""
  counts = [int(k) for k in args.seeds.split(',')]
  jax_runners = {k: JaxRunner(architecture, args.batch_size, device, args.compute_dtype, k,
                             args.replica_form) for k in counts}
  torch_runners = {}
  if not args.no_torch:
    make = lambda: TorchRunner(architecture, args.batch_size, args.threads, device.platform,
                               args.compute_dtype)
    torch_runners = {k: [make() for _ in range(k)] for k in counts}
  rates = {k: {'jax': [], 'torch': []} for k in counts}
  images = lambda k: k * args.steps * args.batch_size
  for _ in range(args.rounds):
    for k in counts:
      rates[k]['jax'].append(images(k) / timed(jax_runners[k].train, args.steps))
      if torch_runners:
        rates[k]['torch'].append(images(k) / timed(
            lambda: [runner.train(args.steps) for runner in torch_runners[k]]))
  results = []
  for k in counts:
    median = {side: statistics.median(v) if v else None for side, v in rates[k].items()}
    results.append({
        'model': architecture, 'replicas': k, 'batch_size': args.batch_size,
        'device': runtime.device_description(device),
        'form': jax_runners[k].replica_form if k > 1 else 'one state',
        'train_img_per_s': median['jax'], 'per_replica_img_per_s': median['jax'] / k,
        'torch_train_img_per_s': median['torch'],
        'speedup_over_one': median['jax'] / statistics.median(rates[counts[0]]['jax'])
                            * counts[0],
        'compile_s': jax_runners[k].compile_seconds,
        'peak_fraction': median['jax'] * jax_runners[k].flops_per_image() / 1e9 / peak_gflops,
        'rounds': rates[k]})
  return results


def ratio(a: float | None, b: float | None) -> str:
  return f'{a / b:.2f}x' if a and b else '—'


def number(value: float | None) -> str:
  return f'{value:,.0f}' if value else '—'


def seeds_markdown(results: list[dict]) -> str:
  lines = ['| model | replicas | form | train img/s (all) | per replica | vs one replica | '
           'PyTorch eager (K models in turn) | ratio | compile s | MFU |',
           '|---|---|---|---|---|---|---|---|---|---|']
  for r in results:
    lines.append(
        f"| {r['model']} | {r['replicas']} | {r['form']} | {number(r['train_img_per_s'])} | "
        f"{number(r['per_replica_img_per_s'])} | {r['speedup_over_one']:.2f}x | "
        f"{number(r['torch_train_img_per_s'])} | "
        f"{ratio(r['train_img_per_s'], r['torch_train_img_per_s'])} | "
        f"{r['compile_s']:.1f} | {100 * r['peak_fraction']:.0f}% |")
  return '\n'.join(lines)


def markdown(results: list[dict]) -> str:
  lines = ['| model | batch | train img/s | PyTorch eager | ratio | inference img/s | PyTorch eager | '
           'ratio | input share | compile s | step memory MB | GFLOP/img | MFU |',
           '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
  for r in results:
    model = r['model'] + ('' if r['compute_dtype'] == 'float32' else f" ({r['compute_dtype']})")
    lines.append(
        f"| {model} | {r['batch_size']} | {number(r['train_img_per_s'])} | "
        f"{number(r['torch_train_img_per_s'])} | "
        f"{ratio(r['train_img_per_s'], r['torch_train_img_per_s'])} | "
        f"{number(r['score_img_per_s'])} | {number(r['torch_score_img_per_s'])} | "
        f"{ratio(r['score_img_per_s'], r['torch_score_img_per_s'])} | "
        f"{100 * r['input_share']:.0f}% | {r['compile_s']:.1f} | "
        f"{r['step_memory_mb']:.0f} | {r['gflop_per_image']:.2f} | "
        f"{100 * r['peak_fraction']:.0f}% |")
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default='dcgan_tf,dcgan_radford',
                      help=f'Comma-separated, of {sorted(WORKLOADS)}.')
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--steps', type=int, default=3, help='Train steps per round.')
  parser.add_argument('--score_calls', type=int, default=3, help='Scoring batches per round.')
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--threads', type=int, default=2, help="PyTorch's intra-op threads.")
  parser.add_argument('--peak_gflops', type=float, default=0.0,
                      help="The device's peak (default: a large matrix product's measured "
                      "rate on the device, in the compute dtype).")
  parser.add_argument('--device', default='', choices=['', 'cpu', 'gpu', 'tpu'],
                      help="JAX's platform (default: JAX's default); PyTorch follows on GPU.")
  parser.add_argument('--compute_dtype', default='float32', choices=sorted(COMPUTE_DTYPES),
                      help=f'bfloat16: mixed precision, for {list(MIXED_PRECISION_MODELS)}.')
  parser.add_argument('--no_torch', action='store_true')
  parser.add_argument('--seeds', default='',
                      help='Comma-separated replica counts, e.g. 1,4,16: train speed of K seeds '
                      'trained as one step (config.seeds), instead of the usual table.')
  parser.add_argument('--replica_form', default='', choices=['', *replicas.FORMS],
                      help="With --seeds: how the replicas' steps run (default: the "
                      "platform's, as training chooses).")
  parser.add_argument('--json', default='', help='Also write the results here.')
  args = parser.parse_args()
  float32_only = set(args.models.split(',')) - set(MIXED_PRECISION_MODELS)
  if args.compute_dtype != 'float32' and float32_only:
    parser.error(f'--compute_dtype={args.compute_dtype} is for {list(MIXED_PRECISION_MODELS)}; '
                 f'{sorted(float32_only)} compute in float32.')
  device = jax.devices(args.device)[0] if args.device else jax.devices()[0]
  peak_gflops, peak_source = peak(device, args.compute_dtype, args.peak_gflops)
  run, table = (benchmark_seeds, seeds_markdown) if args.seeds else (benchmark, markdown)
  results = []
  for name in args.models.split(','):
    measured = run(name, device, peak_gflops, args)
    results.extend(measured if args.seeds else [measured])
    new_rows = len(measured) if args.seeds else 1
    print('\n'.join(table(results).splitlines()[-new_rows:]), flush=True)
    if args.json:  # After each model, so that a run cut short keeps what it measured.
      pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + '\n')
  print()
  print(table(results))
  print(f'\n{runtime.device_description(device)}; MFU: of {peak_gflops:,.0f} GFLOP/s '
        f'({peak_source}).')


if __name__ == '__main__':
  main()
