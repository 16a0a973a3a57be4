"""Compiling a decoding function for the current backend, and the cache of compiled ones.

``tf.function(jit_compile=True)`` on TensorFlow, ``jax.jit`` on JAX (with the
weights passed in as arguments), eager under ``torch.no_grad`` on PyTorch.
Compiled functions are kept per model in ``COMPILED`` (a weak dictionary, so
they go when the model does).
"""

import contextlib
import weakref

import keras

# model -> {key: compiled function(s)}; the key says what was compiled.
COMPILED = weakref.WeakKeyDictionary()


def compiled_for(model):
    """The dictionary of compiled functions of ``model`` (made on first use)."""
    return COMPILED.setdefault(model, {})


def compile_fn(model, fn, rows=None):
    """Compiles a keras.ops function of the model for the current backend.

    Args:
        model: the model whose variables ``fn`` reads.
        fn: the function.
        rows: the batch it decodes, when known (see ``jax_cpu_options``).

    Returns:
        A function of the same arguments.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True, reduce_retracing=False)
    if backend == "jax":
        import jax

        variables = model.variables

        # jax.jit needs pure functions: weights go in as arguments and are
        # bound to the model's variables by a StatelessScope while tracing.
        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        options = jax_cpu_options(rows)
        jitted = jax.jit(stateless, compiler_options=options) if options else jax.jit(stateless)
        return lambda *args: jitted([v.value for v in variables], *args)
    if backend == "torch":
        import torch

        def eager(*args):
            with torch.no_grad():
                return fn(*args)

        return eager
    raise ValueError(f"decoding is not supported on the '{backend}' backend")


def jax_cpu_options(rows):
    """XLA options for a JAX decoding function of ``rows`` rows on CPU (None: the defaults).

    XLA's CPU compiler hands the loop body's products and reductions to
    YNNPACK by default. From a few rows up that made the step's weight
    products slower than XLA's own (Eigen) ones, and each YNNPACK call
    waits on its thread pool; at one row the default was faster, so one
    row keeps it. The option is per
    compiled function: training and the user's own code keep the default.
    """
    import jax

    # Measured on jax 0.10; older XLA builds may not know the option.
    if rows is None or rows < 2 or jax.default_backend() != "cpu" or jax.__version_info__ < (0, 10):
        return None
    return {"xla_cpu_experimental_ynn_fusion_type": ""}


@contextlib.contextmanager
def inference():
    """No autograd bookkeeping on PyTorch; nothing to do elsewhere."""
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            yield
    else:
        yield
