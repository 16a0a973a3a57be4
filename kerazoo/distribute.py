"""Data-parallel training on the backends' own engines.

A recipe's ``[distribute]`` section picks it; ``train.batch_size`` stays the
global batch, split evenly over the devices, so the same recipe trains the
same model on one device or many.

- TensorFlow: ``tf.distribute.MirroredStrategy`` over this process's GPUs (or
  CPU devices when there is no GPU). Several hosts (``TF_CONFIG``) would take
  ``MultiWorkerMirroredStrategy``, which Keras 3.15's ``fit`` cannot run
  under (see ``_tensorflow``): a clear error points to JAX.
- JAX: ``keras.distribution.DataParallel`` over the devices; with
  ``KERAS_DISTRIBUTION_NUM_PROCESSES`` > 1 in the environment (and
  ``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_PROCESS_ID``),
  ``keras.distribution.initialize`` joins the hosts first.
- PyTorch: Keras' ``fit`` has no data-parallel engine there; a clear error.
"""

import contextlib
import dataclasses
import os

import keras

from kerazoo.recipes import RecipeError

_joined_hosts = False  # keras.distribution.initialize has run in this process


@dataclasses.dataclass
class Parallel:
    """How this process trains.

    Attributes:
        replicas: devices sharing each global batch, over all processes.
        is_chief: whether this process writes the run folder (one per cluster).
        scope: a context manager to build, compile and fit under.
        describe: one line for the run's log.
    """

    replicas: int = 1
    is_chief: bool = True
    scope: object = contextlib.nullcontext
    describe: str = ""


def setup(section, batch_size, where="<recipe>"):
    """Starts the recipe's data-parallel engine.

    Call it before any JAX computation: joining several hosts
    (``keras.distribution.initialize``) must come first.

    Args:
        section: the recipe's ``DistributeSection``.
        batch_size: the global batch (``train.batch_size``).
        where: the recipe file, for messages.

    Returns:
        A ``Parallel``.

    Raises:
        RecipeError: an unsupported backend, too few devices, or a batch that
            does not split evenly; the message names the file and the key.
    """
    if section.strategy == "none":
        return Parallel()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        parallel = _tensorflow(section, where)
    elif backend == "jax":
        parallel = _jax(section, where)
    else:
        raise RecipeError(
            f"{where}: 'distribute.strategy' = \"data_parallel\" is not supported on the {backend} backend "
            "(Keras' fit has no data-parallel engine there); use KERAS_BACKEND=jax or tensorflow"
        )
    if batch_size % parallel.replicas:
        raise RecipeError(
            f"{where}: 'train.batch_size' ({batch_size}) must be a multiple of the "
            f"{parallel.replicas} data-parallel devices"
        )
    return parallel


def _pick(available, wanted, where):
    """The first ``wanted`` of ``available`` (all when 0), or a clear error."""
    if wanted > len(available):
        raise RecipeError(f"{where}: 'distribute.devices' ({wanted}) exceeds the {len(available)} devices visible")
    return available[:wanted] if wanted else available


def _tensorflow(section, where):
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        # MultiWorkerMirroredStrategy is the engine for this, but Keras 3.15's
        # fit cannot run under it: it strategy.reduce()s the peeked (x, y)
        # batch and the scalar losses (axis=0) with collectives that reject
        # both. An error now beats a crash after the data is prepared.
        raise RecipeError(
            f"{where}: 'distribute.strategy' = \"data_parallel\" across hosts (TF_CONFIG) does not run on "
            "TensorFlow with Keras 3.15 (fit fails under MultiWorkerMirroredStrategy); use KERAS_BACKEND=jax "
            "with KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID, or unset TF_CONFIG"
        )
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    chosen = [d.name for d in _pick(devices, section.devices, where)]
    strategy = tf.distribute.MirroredStrategy(chosen)
    return Parallel(len(chosen), True, strategy.scope, f"MirroredStrategy over {', '.join(chosen)}")


def _jax(section, where):
    import jax

    global _joined_hosts
    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) > 1 and not _joined_hosts:
        # Reads KERAS_DISTRIBUTION_{JOB_ADDRESSES,NUM_PROCESSES,PROCESS_ID}; it
        # must run before any JAX computation, and once per process.
        keras.distribution.initialize()
        _joined_hosts = True
    # The first `devices` local devices of every process, so that each host
    # contributes the same number.
    by_process = {}
    for device in jax.devices():
        by_process.setdefault(device.process_index, []).append(device)
    chosen = [d for ds in by_process.values() for d in _pick(ds, section.devices, where)]
    names = [f"{d.platform}:{d.id}" for d in chosen]
    distribution = keras.distribution.DataParallel(devices=names)
    hosts = f" on {len(by_process)} hosts" if len(by_process) > 1 else ""
    return Parallel(len(chosen), jax.process_index() == 0, distribution.scope,
                    f"keras.distribution.DataParallel over {len(chosen)} devices{hosts}")
