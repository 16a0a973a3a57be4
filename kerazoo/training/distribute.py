"""Data-parallel training on the backends' own engines.

A recipe's ``[distribute]`` section picks it; ``train.batch_size`` stays the
global batch, split evenly over the devices, so the same recipe trains the
same model on one device or many.

- TensorFlow: ``tf.distribute.MirroredStrategy`` over this process's GPUs (or
  CPU devices when there is no GPU); several hosts (``TF_CONFIG``) take
  ``MultiWorkerMirroredStrategy``, with two patches that Keras 3.15's
  ``fit`` needs under it (see ``_multi_worker_scope``).
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

from kerazoo.training.recipes import RecipeError

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
        return _tensorflow_workers(section, where)
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    chosen = [d.name for d in _pick(devices, section.devices, where)]
    strategy = tf.distribute.MirroredStrategy(chosen)
    return Parallel(len(chosen), True, strategy.scope, f"MirroredStrategy over {', '.join(chosen)}")


def _tensorflow_workers(section, where):
    """``MultiWorkerMirroredStrategy`` over the workers that ``TF_CONFIG`` names."""
    import tensorflow as tf

    if section.devices:
        raise RecipeError(
            f"{where}: 'distribute.devices' ({section.devices}) is not supported with TF_CONFIG: "
            "MultiWorkerMirroredStrategy uses every GPU of each worker (hide some with CUDA_VISIBLE_DEVICES)"
        )
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    workers = len(resolver.cluster_spec().as_dict().get("worker", [])) or 1
    # The chief is task "chief" if the cluster has one, else worker 0.
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    is_chief = resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)
    return Parallel(strategy.num_replicas_in_sync, is_chief, lambda: _multi_worker_scope(strategy),
                    f"MultiWorkerMirroredStrategy over {strategy.num_replicas_in_sync} devices on {workers} workers")


@contextlib.contextmanager
def _multi_worker_scope(strategy):
    """``strategy.scope()`` plus two fixes that let Keras 3.15's ``fit`` run under it.

    Keras' TensorFlow trainer, under ``MultiWorkerMirroredStrategy`` only:
    1. builds the model's metrics from the first batch reduced with
       ``strategy.reduce("MEAN", batch)``, a collective that int token ids
       cannot take; one replica's batch has the same shapes, which is all
       the symbolic build reads;
    2. reduces each scalar log with ``strategy.reduce("MEAN", v, axis=0)``,
       which fails on a scalar; ``axis=None`` averages over the replicas.
    Both are patched for the duration of the scope and restored after.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = tf_trainer.reduce_per_replica
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy_, reduction):
        if reduction in ("mean", "auto") and tf_trainer._collective_all_reduce_multi_worker(strategy_):
            def scalar_mean(v):
                # One replica per worker gives plain tensors, several give
                # PerReplica values; both are all-reduced over the workers.
                if getattr(v, "shape", None) is not None and v.shape.rank == 0:
                    return strategy_.reduce("MEAN", v, axis=None)
                return original_reduce(v, strategy_, reduction)
            return keras.tree.map_structure(scalar_mean, values)
        return original_reduce(values, strategy_, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None and self._distribute_strategy is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = keras.tree.map_structure(
                    lambda x: self._distribute_strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues) else x, batch)
                break
            iterator = None
        return original_build(self, iterator=iterator, data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    try:
        with strategy.scope():
            yield
    finally:
        tf_trainer.reduce_per_replica = original_reduce
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build = original_build


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
