"""fakejax: detectors of generated images, trained and evaluated with JAX."""

from fakejax import runtime as _runtime

# Before JAX creates its CPU backend, which reads XLA_FLAGS once.
_runtime.use_eigen_cpu_convolutions()
# Every entry point, tool and test that restores checkpoints reports a damaged one once.
_runtime.drop_abandoned_checkpoint_reads()
