"""Layers written for speed that compute exactly what their textbook versions compute.

A strided transposed convolution (and the input gradient of a strided convolution, which
is one) splits into `stride**2` output phases: output `stride * m + phase` only ever sees
kernel taps `stride * d - phase + pad_low` applied to input `m + d`. Each phase is then a
stride-1 convolution, which XLA's CPU backend runs 5-30x faster than the strided forms.
With few output channels, the scatter form is faster still: one matrix product gives
every tap's contribution, which shifted adds place.
"""

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')

# With fewer output channels than this, the scatter form is faster than the phase form
# (4x4/2 from 128 channels at 14x14, batch 256 on 2 cores, fwd + both gradients:
# 1 out 29 vs 83 ms, 4 out 79 vs 109 ms, 8 out 124 vs 112 ms).
MIN_PHASE_FEATURES = 8


def _same_padding_low(kernel: int, stride: int) -> int:
  """Low-side padding of `lax.conv_transpose(..., padding='SAME')` on the dilated input."""
  pad_len = kernel + stride - 2
  return kernel - 1 if stride > kernel - 1 else int(np.ceil(pad_len / 2))


def phase_taps(kernel: int, stride: int, pad_low: int) -> list[tuple[int, list[int]]]:
  """Per output phase: (first input offset d, kernel taps for offsets d, d + 1, ...).

  Output `stride * m + phase` is sum_d x[m + d] K[stride * d - phase + pad_low] over the
  taps inside [0, kernel); the offsets of one phase are consecutive. With a kernel
  smaller than the stride, some phases have no taps (first offset 0).
  """
  phases = []
  for phase in range(stride):
    offsets = [d for d in range(-kernel, kernel + 1)
               if 0 <= stride * d - phase + pad_low < kernel]
    phases.append((offsets[0] if offsets else 0,
                   [stride * d - phase + pad_low for d in offsets]))
  return phases


def _conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=DIMENSIONS)


def conv_kernel_grad(x: jax.Array, dy: jax.Array,
                     padding: Sequence[tuple[int, int]]) -> jax.Array:
  """The kernel gradient of `_conv(x, kernel, padding)`, [kh, kw, in, out], as the
  convolution XLA's CPU backend runs fast: input channels as the batch, images as features.

  XLA rewrites a weight gradient into this form itself, but not inside the body of a
  `lax.cond`, `scan` or `while`: there it compiled a plain loop nest, 17.7 s against
  0.37 s (a 4x4/2 transposed convolution 256 -> 128 at 7x7 in phase form, batch 256: the
  generator update of WGAN-GP, every fifth step).
  """
  kernel_grad = jax.lax.conv_general_dilated(
      jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(dy, (1, 2, 0, 3)), (1, 1), padding,
      dimension_numbers=DIMENSIONS)  # [in, kh, kw, out]
  return jnp.transpose(kernel_grad, (1, 2, 0, 3))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def phase_conv(x: jax.Array, kernel: jax.Array,
               padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """A stride-1 convolution (one phase of the phase form) whose gradients are written
  in the layouts XLA's CPU convolutions take, inside control flow as well."""
  return _conv(x, kernel, padding)


def _phase_conv_forward(x, kernel, padding):
  return _conv(x, kernel, padding), (x, kernel)


def _phase_conv_backward(padding, residuals, dy):
  x, kernel = residuals
  # The input gradient: the flipped kernel, inputs and outputs swapped, in the layout
  # XLA's CPU convolutions take (its own gradient keeps the kernel as [kh, kw, out, in]).
  (kh, kw), ((low_h, high_h), (low_w, high_w)) = kernel.shape[:2], padding
  flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)
  input_grad = _conv(dy, flipped, ((kh - 1 - low_h, kh - 1 - high_h),
                                   (kw - 1 - low_w, kw - 1 - high_w)))
  return input_grad, conv_kernel_grad(x, dy, padding)


phase_conv.defvjp(_phase_conv_forward, _phase_conv_backward)


def phase_conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                         pad_low: Sequence[int]) -> jax.Array:
  """Transposed convolution (kernel [kh, kw, in, out], not flipped), output size stride * in.

  `pad_low` is the low-side padding of the equivalent convolution over the stride-dilated
  input. Each phase is one stride-1 convolution with exactly that phase's taps.
  """
  (kh, kw), (sh, sw) = kernel.shape[:2], strides
  rows = []
  for first_h, taps_h in phase_taps(kh, sh, pad_low[0]):
    row = []
    for first_w, taps_w in phase_taps(kw, sw, pad_low[1]):
      if not taps_h or not taps_w:
        row.append(jnp.zeros((*x.shape[:3], kernel.shape[3]), x.dtype))
        continue
      phase_kernel = kernel[np.asarray(taps_h)][:, np.asarray(taps_w)]
      padding = ((-first_h, len(taps_h) - 1 + first_h), (-first_w, len(taps_w) - 1 + first_w))
      row.append(phase_conv(x, phase_kernel, padding))
    rows.append(jnp.stack(row, axis=3))  # [B, H, W, sw, C]
  # [B, H, sh, W, sw, C] is already the interleaved image: the reshape moves no data.
  y = jnp.stack(rows, axis=2)
  batch, height, _, width, _, features = y.shape
  return y.reshape(batch, height * sh, width * sw, features)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """`lax.conv_transpose(x, kernel, strides, 'SAME')` as stride-1 convolutions + depth-to-space.

  The transposed convolution's weight gradient runs at ~4 GFLOP/s on XLA's CPU backend;
  the phase form runs >20x faster, with identical outputs and gradients (up to rounding).
  """
  (kh, kw), (sh, sw) = kernel.shape[:2], strides
  return phase_conv_transpose(x, kernel, strides,
                              (_same_padding_low(kh, sh), _same_padding_low(kw, sw)))


def scatter_transpose_taps(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                           pad_low: Sequence[int], out_hw: Sequence[int]) -> jax.Array:
  """Transposed convolution (kernel [kh, kw, in, out], not flipped) as one matrix product.

  Input `i` adds `x[i] @ kernel[t]` to output `stride * i + pad_low - t` (outputs outside
  [0, out_hw) are dropped). One product gives every tap's contribution; a pad dilates and
  shifts each into place. Its gradients are matrix products too.
  """
  (kh, kw, in_features, features), (sh, sw) = kernel.shape, strides
  batch, height, width, _ = x.shape
  per_tap = jnp.dot(x.reshape(-1, in_features),
                    kernel.transpose(2, 0, 1, 3).reshape(in_features, kh * kw * features))
  # One split, not kh * kw slices: its transpose is one concatenation, where slices'
  # transposes would each pad back to the full size.
  per_tap = jnp.split(per_tap.reshape(batch, height, width, kh * kw, features), kh * kw, axis=3)
  y = jnp.zeros((batch, *out_hw, features), x.dtype)
  for tap, contribution in enumerate(per_tap):
    shift_h, shift_w = pad_low[0] - tap // kw, pad_low[1] - tap % kw
    y = y + jax.lax.pad(contribution[:, :, :, 0], jnp.zeros((), x.dtype), [
        (0, 0, 0),
        (shift_h, out_hw[0] - (height - 1) * sh - 1 - shift_h, sh - 1),
        (shift_w, out_hw[1] - (width - 1) * sw - 1 - shift_w, sw - 1),
        (0, 0, 0)])
  return y


def scatter_conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """`lax.conv_transpose(x, kernel, strides, 'SAME')` in scatter form.

  For few output channels this beats both other forms: XLA's CPU weight gradient of the
  transposed convolution first transposes the whole input.
  """
  (kh, kw), (sh, sw) = kernel.shape[:2], strides
  return scatter_transpose_taps(x, kernel, strides,
                                (_same_padding_low(kh, sh), _same_padding_low(kw, sw)),
                                (sh * x.shape[1], sw * x.shape[2]))


def _valid_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _conv(x, kernel, 'VALID')


def valid_conv_input_grad(dy: jax.Array, kernel: jax.Array) -> jax.Array:
  """Input gradient of a stride-1 'VALID' convolution in scatter form.

  Output `o` received `x[o + t] @ kernel[t]`, so `dy[o] @ kernel[t].T` goes back to `o + t`:
  the flipped, transposed kernel scattered from `o + k - 1 - t'`.
  """
  (kh, kw), (height, width) = kernel.shape[:2], dy.shape[1:3]
  flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)
  return scatter_transpose_taps(dy, flipped, (1, 1), (kh - 1, kw - 1),
                                (height + kh - 1, width + kw - 1))


@jax.custom_vjp
def small_map_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A stride-1 'VALID' convolution whose input gradient takes the scatter form."""
  return _valid_conv(x, kernel)


def _small_map_conv_forward(x, kernel):
  return _valid_conv(x, kernel), (x, kernel)


def _small_map_conv_backward(residuals, dy):
  x, kernel = residuals
  _, kernel_vjp = jax.vjp(lambda k: _valid_conv(x, k), kernel)
  return valid_conv_input_grad(dy, kernel), kernel_vjp(dy)[0]


small_map_conv.defvjp(_small_map_conv_forward, _small_map_conv_backward)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """`nn.max_pool(x, (2, 2), strides=(2, 2))` (padding 'VALID') as a reshape and a max.

  XLA's CPU backend runs max-pooling's gradient (select-and-scatter) 2-7x slower than
  the gradient of this max (batch 256 on 2 cores, fwd + bwd: 28x28x32 102 vs 45 ms,
  14x14x64 47 vs 7 ms). Outputs are identical. Tied maxima share the gradient where
  select-and-scatter gives it all to the first: only exactly equal inputs can tell.
  """
  batch, height, width, features = x.shape
  x = x[:, :height - height % 2, :width - width % 2]
  return x.reshape(batch, height // 2, 2, width // 2, 2, features).max(axis=(2, 4))


class _ConvLayer(nn.Module):
  """Parameters named and shaped as Flax's convolutions: 'kernel' [kh, kw, in, out], 'bias'.

  Parameters are float32; `dtype` is the computation's (bfloat16 for mixed precision):
  inputs and parameters are cast to it, as Flax's layers do.
  """
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: jnp.dtype = jnp.float32

  def inputs_and_kernel(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    kernel = self.param('kernel', self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    return x.astype(self.dtype), kernel.astype(self.dtype)

  def add_bias(self, y: jax.Array) -> jax.Array:
    if not self.use_bias:
      return y
    return y + self.param('bias', self.bias_init, (self.features,), jnp.float32).astype(self.dtype)


class SubPixelConvTranspose(_ConvLayer):
  """Drop-in for `nn.ConvTranspose(padding='SAME')`: same parameters, same outputs, faster.

  Strided layers with at least MIN_PHASE_FEATURES outputs take the phase form, those with
  fewer the scatter form.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel = self.inputs_and_kernel(x)
    if tuple(self.strides) == (1, 1):
      y = jax.lax.conv_transpose(x, kernel, self.strides, 'SAME', dimension_numbers=DIMENSIONS)
    elif self.features < MIN_PHASE_FEATURES:
      y = scatter_conv_transpose(x, kernel, self.strides)
    else:
      y = subpixel_conv_transpose(x, kernel, self.strides)
    return self.add_bias(y)


def _same_conv_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """(low, high) padding of `lax.conv(..., padding='SAME')` along one axis."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def strided_conv_input_grad(dy: jax.Array, kernel: jax.Array, strides: Sequence[int],
                            input_hw: Sequence[int]) -> jax.Array:
  """Input gradient of a 'SAME' strided convolution, as a phase-decomposed transposed one."""
  (kh, kw), (sh, sw) = kernel.shape[:2], strides
  low_h = _same_conv_padding(input_hw[0], kh, sh)[0]
  low_w = _same_conv_padding(input_hw[1], kw, sw)[0]
  # dx[s*m + r] = sum_d dy[m + d] K[r + low - s*d]: the flipped kernel at s*d - r + (k-1-low).
  flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)
  dx = phase_conv_transpose(dy, flipped, strides, (kh - 1 - low_h, kw - 1 - low_w))
  return dx[:, :input_hw[0], :input_hw[1]]


def _strided_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, strides, 'SAME', dimension_numbers=DIMENSIONS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def strided_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
  """`lax.conv(x, kernel, strides, 'SAME')` whose input gradient takes the phase form."""
  return _strided_conv(x, kernel, strides)


def _strided_conv_forward(x, kernel, strides):
  return _strided_conv(x, kernel, strides), (x, kernel)


def _strided_conv_backward(strides, residuals, dy):
  x, kernel = residuals
  _, kernel_vjp = jax.vjp(lambda k: _strided_conv(x, k, strides), kernel)
  return strided_conv_input_grad(dy, kernel, strides, x.shape[1:3]), kernel_vjp(dy)[0]


strided_conv.defvjp(_strided_conv_forward, _strided_conv_backward)


# A stride-1 'SAME' convolution from at most this many input channels, to at least
# GATHER_MIN_WIDENING times as many outputs, takes the gather form; one to fewer than
# MIN_PHASE_FEATURES outputs from at least GATHER_MIN_WIDENING times as many inputs, the
# scatter form. Forward and both gradients, batch 256, 3x3, on 2 cores (ms, convolution
# vs gather): 2 -> 64 at 14x14 57 vs 21, 8 -> 64 at 14x14 100 vs 57, 1 -> 16 at 28x28 69
# vs 27; but 4 -> 16 at 28x28 76 vs 86 and 8 -> 16 at 28x28 99 vs 145. The scatter form
# made the flow's step 11% faster (its couplings' 64 -> 4 and 64 -> 8 layers).
GATHER_MAX_IN_FEATURES = 8
GATHER_MIN_WIDENING = 8


def gather_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """`lax.conv(x, kernel, (1, 1), 'SAME')` as one matrix product over gathered patches.

  With few input channels XLA's CPU convolution is a thin product per tap; the kh * kw
  shifted copies of the input, side by side, make it one product of depth kh * kw * in.
  """
  kh, kw, in_features, features = kernel.shape
  batch, height, width, _ = x.shape
  x = jnp.pad(x, ((0, 0), _same_conv_padding(height, kh, 1), _same_conv_padding(width, kw, 1),
                  (0, 0)))
  patches = jnp.concatenate([x[:, i:i + height, j:j + width] for i in range(kh)
                             for j in range(kw)], axis=-1)
  y = patches.reshape(-1, kh * kw * in_features) @ kernel.reshape(-1, features)
  return y.reshape(batch, height, width, features)


def scatter_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """`lax.conv(x, kernel, (1, 1), 'SAME')` in scatter form: `scatter_transpose_taps` at
  stride 1, where input `i` adds `x[i] @ kernel[t]` to output `i + low - t`, which is
  what the convolution sums."""
  (kh, kw), (height, width) = kernel.shape[:2], x.shape[1:3]
  low = (_same_conv_padding(height, kh, 1)[0], _same_conv_padding(width, kw, 1)[0])
  return scatter_transpose_taps(x, kernel, (1, 1), low, (height, width))


class SameConv(_ConvLayer):
  """Drop-in for `nn.Conv(padding='SAME')` at stride 1: from few input channels to many
  outputs (a model's first layer, a flow's coupling) it takes the gather form, from many
  to few the scatter form."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel = self.inputs_and_kernel(x)
    in_features = x.shape[-1]
    if (in_features <= GATHER_MAX_IN_FEATURES and
        self.features >= GATHER_MIN_WIDENING * in_features):
      y = gather_conv(x, kernel)
    elif (self.features < MIN_PHASE_FEATURES and
          in_features >= GATHER_MIN_WIDENING * self.features):
      y = scatter_conv(x, kernel)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME', dimension_numbers=DIMENSIONS)
    return self.add_bias(y)


class ValidConv(_ConvLayer):
  """Drop-in for `nn.Conv(padding='VALID')` at stride 1.

  Where the output map is smaller than the kernel (the last layers of small-image CNNs),
  XLA's CPU backend computes the input gradient with the roles of data and kernel
  swapped: 23 ms against the scatter form's 1.4 ms for 4x4x64 -> 2x2x128, batch 256.
  Such layers take the scatter form; others are plain convolutions.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel = self.inputs_and_kernel(x)
    out_h, out_w = x.shape[1] - self.kernel_size[0] + 1, x.shape[2] - self.kernel_size[1] + 1
    small_map = out_h < self.kernel_size[0] or out_w < self.kernel_size[1]
    return self.add_bias(small_map_conv(x, kernel) if small_map else _valid_conv(x, kernel))


def depthwise_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int]) -> jax.Array:
  """`lax.conv(x, kernel, strides, 'SAME', feature_group_count=channels)`, kernel
  [kh, kw, 1, channels], as one multiply-add of a shifted (strided) slice per tap.

  XLA's CPU backend is slow at grouped convolutions: forward and both gradients at
  14x14x96 (batch 256, 3x3) took 1.0 s, the shifted form 0.18 s.
  """
  (kh, kw), (sh, sw) = kernel.shape[:2], strides
  batch, height, width, channels = x.shape
  out_h, out_w = -(-height // sh), -(-width // sw)
  x = jnp.pad(x, ((0, 0), _same_conv_padding(height, kh, sh), _same_conv_padding(width, kw, sw),
                  (0, 0)))
  y = jnp.zeros((batch, out_h, out_w, channels), x.dtype)
  for i in range(kh):
    for j in range(kw):
      tap = jax.lax.slice(x, (0, i, j, 0), (batch, i + (out_h - 1) * sh + 1,
                                            j + (out_w - 1) * sw + 1, channels), (1, sh, sw, 1))
      y = y + tap * kernel[i, j, 0]
  return y


class DepthwiseConv(nn.Module):
  """Drop-in for `nn.Conv(channels, feature_group_count=channels, padding='SAME',
  use_bias=False)`: the same 'kernel' [kh, kw, 1, channels], initialised alike."""
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init, (*self.kernel_size, 1, x.shape[-1]),
                        jnp.float32)
    return depthwise_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.strides)


# A strided convolution from fewer input channels keeps XLA's own input gradient. Forward
# and both gradients, batch 256, on 2 cores (Zen 3), XLA's vs the phase form, ms: 1 -> 64
# 5x5/2 at 28x28 32 vs 52, 1 -> 64 4x4/2 26 vs 35, 4 -> 32 3x3/2 22 vs 28; but 16 -> 32
# 3x3/2 100 vs 49, 64 -> 128 5x5/2 at 14x14 294 vs 201.
MIN_PHASE_INPUT_FEATURES = 8


class StridedConv(_ConvLayer):
  """Drop-in for `nn.Conv(padding='SAME')` whose input gradient, on CPUs, takes the phase form.

  XLA's CPU backend computes a strided convolution's input gradient as an input-dilated
  convolution on one thread; the phase form is multi-threaded stride-1 convolutions.
  On a GPU the plain convolution's gradient is faster (an H100, batch 256, forward and
  both gradients: 0.17-0.21 ms against the phase form's 0.28-0.32 ms), so other
  platforms keep it, and so do layers from fewer than MIN_PHASE_INPUT_FEATURES channels.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel = self.inputs_and_kernel(x)
    strides = tuple(self.strides)
    if x.shape[-1] < MIN_PHASE_INPUT_FEATURES:
      return self.add_bias(_strided_conv(x, kernel, strides))
    y = jax.lax.platform_dependent(x, kernel, cpu=lambda x, k: strided_conv(x, k, strides),
                                   default=lambda x, k: _strided_conv(x, k, strides))
    return self.add_bias(y)


class GroupNorm(nn.Module):
  """Drop-in for `nn.GroupNorm(num_groups)` on [B, H, W, C]: the same 'scale' and 'bias',
  the same statistics (E[x^2] - E[x]^2, as Flax's fast variance), 2-2.5x faster.

  Each group's moments come from per-channel means over the image, a reduction that
  keeps channels minor. Flax's reshape to [B, H, W, groups, C / groups] made XLA's CPU
  backend reduce across the minor axes: forward and both gradients at 28x28x16, batch
  256, took 126 ms against 54 ms.
  """
  num_groups: int
  epsilon: float = 1e-6

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    batch, channels = x.shape[0], x.shape[-1]
    per_group = lambda moment: jnp.mean(moment.reshape(batch, self.num_groups, -1), axis=-1)
    mean = per_group(jnp.mean(x, axis=(1, 2)))
    variance = jnp.maximum(per_group(jnp.mean(jnp.square(x), axis=(1, 2))) - mean**2, 0.0)
    scale = self.param('scale', nn.initializers.ones, (channels,))
    bias = self.param('bias', nn.initializers.zeros, (channels,))
    to_channels = lambda v: jnp.repeat(v, channels // self.num_groups, axis=-1)
    multiplier = to_channels(jax.lax.rsqrt(variance + self.epsilon)) * scale
    offset = bias - to_channels(mean) * multiplier
    return x * multiplier[:, None, None, :] + offset[:, None, None, :]
