"""Model shapes, value ranges, and the fast layers' equality with the textbook ones."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fakejax.models import GAN_ARCHITECTURES, build_gan
from fakejax.models import layers
from fakejax.models.layers import StridedConv, SubPixelConvTranspose


@pytest.mark.parametrize('architecture', sorted(GAN_ARCHITECTURES))
def test_generator_makes_28x28_images_in_tanh_range(architecture):
  models = build_gan(architecture)
  latents = jax.random.normal(jax.random.PRNGKey(0), (5, 100))
  variables = models.generator.init(jax.random.PRNGKey(1), latents, train=False)
  images = models.generator.apply(variables, latents, train=False)
  assert images.shape == (5, 28, 28, 1)
  assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0
  assert float(images.std()) > 0.0


@pytest.mark.parametrize('architecture', sorted(GAN_ARCHITECTURES))
def test_discriminator_gives_one_finite_logit_per_image(architecture):
  models = build_gan(architecture)
  images = jax.random.uniform(jax.random.PRNGKey(0), (7, 28, 28, 1), minval=-1, maxval=1)
  variables = models.discriminator.init(jax.random.PRNGKey(1), images, train=False)
  logits = models.discriminator.apply(variables, images, train=False)
  assert logits.shape == (7,)
  assert bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize('architecture', sorted(GAN_ARCHITECTURES))
def test_bfloat16_models_keep_float32_parameters_and_outputs(architecture):
  """Mixed precision: the same float32 parameters; bfloat16 inside; float32 results near
  the float32 model's (bfloat16 keeps 8 bits of mantissa)."""
  full, mixed = build_gan(architecture), build_gan(architecture, 'bfloat16')
  latents = jax.random.normal(jax.random.PRNGKey(0), (16, 100))
  g_variables = full.generator.init(jax.random.PRNGKey(1), latents, train=False)
  mixed_g_variables = mixed.generator.init(jax.random.PRNGKey(1), latents, train=False)
  assert jax.tree.all(jax.tree.map(lambda a, b: a.dtype == b.dtype == jnp.float32 and
                                   bool(jnp.all(a == b)), g_variables, mixed_g_variables))
  images = full.generator.apply(g_variables, latents, train=False)
  mixed_images = mixed.generator.apply(g_variables, latents, train=False)
  assert mixed_images.dtype == jnp.float32
  assert 0.0 < float(jnp.abs(mixed_images - images).max()) < 0.02
  d_variables = full.discriminator.init(jax.random.PRNGKey(2), images, train=False)
  logits = full.discriminator.apply(d_variables, images, train=False)
  mixed_logits = mixed.discriminator.apply(d_variables, images, train=False)
  assert mixed_logits.dtype == jnp.float32
  assert 0.0 < float(jnp.abs(mixed_logits - logits).max()) < 0.02 * float(jnp.abs(logits).max())


def test_unknown_compute_dtype_is_a_clear_error():
  with pytest.raises(ValueError, match="Unknown compute dtype 'float16'.*bfloat16"):
    build_gan('dcgan_tf', 'float16')


def test_unknown_architecture_is_a_clear_error():
  with pytest.raises(ValueError, match="Unknown GAN architecture 'dcgan_tff'.*dcgan_tf"):
    build_gan('dcgan_tff')


def assert_same_layer(textbook: nn.Module, fast: nn.Module, x: jax.Array) -> jax.Array:
  """Same parameter shapes, outputs, and gradients for parameters and input."""
  variables = jax.jit(textbook.init)(jax.random.PRNGKey(1), x)
  assert jax.tree.map(jnp.shape, jax.eval_shape(fast.init, jax.random.PRNGKey(1), x)) == (
      jax.tree.map(jnp.shape, variables))

  @jax.jit  # One program per layer: compiled at once, not op by op.
  def outputs_and_gradients(variables, x):
    def loss(module, variables, x):
      y = module.apply(variables, x)
      return jnp.sum(jnp.sin(y)), y  # A non-linear loss: gradients differ per output.
    return [jax.value_and_grad(functools.partial(loss, module), argnums=(0, 1),
                               has_aux=True)(variables, x) for module in (textbook, fast)]

  ((_, y_ref), grads_ref), ((_, y_fast), grads_fast) = outputs_and_gradients(variables, x)
  assert y_fast.shape == y_ref.shape
  np.testing.assert_allclose(y_fast, y_ref, rtol=1e-5, atol=1e-5)
  for fast_leaf, ref_leaf in zip(jax.tree.leaves(grads_fast), jax.tree.leaves(grads_ref)):
    np.testing.assert_allclose(fast_leaf, ref_leaf, rtol=1e-4, atol=1e-4)
  return y_fast


@pytest.mark.parametrize('kernel,stride,in_features,out_features,size', [
    (5, 2, 64, 1, 14),  # dcgan_tf's last layer
    (5, 2, 128, 64, 7),  # dcgan_tf's middle layer
    (4, 2, 256, 128, 7),  # dcgan_radford's first layer
    (4, 2, 128, 1, 14),  # dcgan_radford's last layer
    (3, 2, 4, 5, 6),
    (4, 3, 3, 2, 5),
    (2, 3, 5, 3, 4),  # Kernel smaller than the stride.
    (5, 1, 8, 4, 7),
])
def test_subpixel_conv_transpose_matches_flax_conv_transpose(kernel, stride, in_features,
                                                             out_features, size):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, in_features))
  y = assert_same_layer(
      nn.ConvTranspose(out_features, (kernel, kernel), strides=(stride, stride), padding='SAME'),
      SubPixelConvTranspose(out_features, (kernel, kernel), strides=(stride, stride)), x)
  assert y.shape == (2, size * stride, size * stride, out_features)


@pytest.mark.parametrize('form', [layers.subpixel_conv_transpose, layers.scatter_conv_transpose])
@pytest.mark.parametrize('kernel,stride,in_features,out_features,size', [
    (4, 2, 6, 5, 7), (5, 2, 3, 1, 6), (4, 3, 3, 2, 5), (2, 3, 5, 3, 4), (6, 2, 2, 4, 3)])
def test_both_transposed_convolution_forms_match_lax(form, kernel, stride, in_features,
                                                     out_features, size):
  """Either form serves any layer: outputs and both gradients equal lax.conv_transpose's."""
  x = jax.random.normal(jax.random.PRNGKey(0), (3, size, size, in_features))
  k = jax.random.normal(jax.random.PRNGKey(1), (kernel, kernel, in_features, out_features))
  textbook = lambda x, k: jax.lax.conv_transpose(x, k, (stride, stride), 'SAME',
                                                 dimension_numbers=layers.DIMENSIONS)
  fast = lambda x, k: form(x, k, (stride, stride))
  np.testing.assert_allclose(fast(x, k), textbook(x, k), rtol=1e-5, atol=1e-5)
  cotangent = jax.random.normal(jax.random.PRNGKey(2), textbook(x, k).shape)
  for got, want in zip(jax.vjp(fast, x, k)[1](cotangent), jax.vjp(textbook, x, k)[1](cotangent)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('kernel,in_features,out_features,size', [
    (3, 2, 64, 14),  # The flow's couplings, first layer: gather form.
    (3, 1, 16, 28),  # The U-Net's first layer: gather form.
    (1, 64, 64, 14),  # Pointwise: a matrix product.
    (3, 64, 4, 14),  # The couplings' last layer: scatter form.
    (4, 32, 2, 9),  # An even kernel, scatter form.
    (3, 16, 16, 7),  # XLA's own convolution.
])
def test_same_conv_matches_flax_conv(kernel, in_features, out_features, size):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, in_features))
  assert_same_layer(nn.Conv(out_features, (kernel, kernel)),
                    layers.SameConv(out_features, (kernel, kernel)), x)


@pytest.mark.parametrize('shape', [(2, 28, 28, 16), (3, 7, 7, 32)])
def test_group_norm_matches_flax_group_norm(shape):
  x = 3.0 * jax.random.normal(jax.random.PRNGKey(0), shape) + 1.0
  assert_same_layer(nn.GroupNorm(8), layers.GroupNorm(8), x)


def test_phase_form_gradients_hold_inside_cond_and_to_second_order():
  """The phase form's written gradients inside `lax.cond` (as WGAN-GP's generator update)
  and differentiated again (as a gradient penalty): equal to lax.conv_transpose's."""
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 7, 6))
  k = jax.random.normal(jax.random.PRNGKey(1), (4, 4, 6, 8))
  textbook = lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), 'SAME',
                                                 dimension_numbers=layers.DIMENSIONS)
  fast = lambda x, k: layers.subpixel_conv_transpose(x, k, (2, 2))

  def penalty_grads(form, x, k):
    input_grad = lambda x, k: jax.grad(lambda x: jnp.sum(jnp.sin(form(x, k))))(x)
    penalty = lambda x, k: jnp.sum(jnp.sqrt(jnp.sum(input_grad(x, k) ** 2, axis=(1, 2, 3))))
    return jax.lax.cond(jnp.sum(x) > -1e9, lambda: jax.grad(penalty, (0, 1))(x, k),
                        lambda: (jnp.zeros_like(x), jnp.zeros_like(k)))

  for got, want in zip(jax.jit(penalty_grads, static_argnums=0)(fast, x, k),
                       jax.jit(penalty_grads, static_argnums=0)(textbook, x, k)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('kernel,stride,in_features,out_features,size', [
    (5, 2, 1, 64, 28),  # dcgan_tf's discriminator
    (5, 2, 64, 128, 14),
    (4, 2, 1, 64, 28),  # dcgan_radford's discriminator
    (4, 2, 64, 128, 14),
    (3, 2, 3, 4, 7),  # Odd input: the last phase is shorter.
    (4, 3, 2, 3, 8),
    (3, 1, 2, 3, 5),
])
def test_strided_conv_matches_flax_conv(kernel, stride, in_features, out_features, size):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, in_features))
  y = assert_same_layer(
      nn.Conv(out_features, (kernel, kernel), strides=(stride, stride), padding='SAME'),
      StridedConv(out_features, (kernel, kernel), strides=(stride, stride)), x)
  assert y.shape == (2, -(-size // stride), -(-size // stride), out_features)


@pytest.mark.parametrize('kernel,in_features,out_features,size', [
    (3, 64, 128, 4),  # The Sequential CNN's last layer on 28x28 inputs: scatter form.
    (3, 3, 4, 3),  # A 1x1 output.
    (2, 3, 5, 3),  # Output 2 = kernel: a plain convolution.
    (3, 2, 3, 9),
])
def test_valid_conv_matches_flax_conv(kernel, in_features, out_features, size):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, in_features))
  y = assert_same_layer(nn.Conv(out_features, (kernel, kernel), padding='VALID'),
                        layers.ValidConv(out_features, (kernel, kernel)), x)
  assert y.shape == (2, size - kernel + 1, size - kernel + 1, out_features)


@pytest.mark.parametrize('kernel,stride,channels,height,width', [
    (3, 1, 16, 14, 14),  # MobileNets' stride-1 blocks.
    (3, 2, 24, 14, 14),  # Stride 2 on an even map: padding (0, 1).
    (5, 2, 8, 7, 7),  # EfficientNet's 5x5 at an odd size: padding (2, 2).
    (5, 1, 4, 2, 3),  # A map smaller than the kernel, not square.
])
def test_depthwise_conv_matches_flax_grouped_conv(kernel, stride, channels, height, width):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, height, width, channels))
  textbook = nn.Conv(channels, (kernel, kernel), strides=stride, padding='SAME',
                     feature_group_count=channels, use_bias=False)
  fast = layers.DepthwiseConv((kernel, kernel), strides=(stride, stride))
  y = assert_same_layer(textbook, fast, x)
  assert y.shape == (2, -(-height // stride), -(-width // stride), channels)
  # Initialised alike, so that runs from scratch start where the grouped convolution did.
  np.testing.assert_array_equal(fast.init(jax.random.PRNGKey(3), x)['params']['kernel'],
                                textbook.init(jax.random.PRNGKey(3), x)['params']['kernel'])


@pytest.mark.parametrize('shape', [(2, 28, 28, 3), (3, 7, 9, 2)])
def test_max_pool_2x2_matches_flax_max_pool(shape):
  """Same outputs; the same gradients wherever no two inputs of a window tie."""
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  textbook = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  np.testing.assert_array_equal(layers.max_pool_2x2(x), textbook(x))
  loss = lambda pool: lambda x: jnp.sum(jnp.sin(pool(x)))  # Different cotangent per output.
  np.testing.assert_allclose(jax.grad(loss(layers.max_pool_2x2))(x), jax.grad(loss(textbook))(x),
                             rtol=1e-6)
