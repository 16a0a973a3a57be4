"""The fit loop's callbacks cost nothing per step: no per-batch hook keeps Keras from dispatching asynchronously."""

import math

import keras
import pytest

from kerazoo.training import callbacks as zoo_callbacks
from kerazoo.training import lifecycle
from kerazoo.training.recipes import TrainSection


def _has_batch_hook(cb):
    """Whether Keras would convert every step's logs for ``cb`` on the training thread."""
    own = [name for name in ("on_batch_end", "on_train_batch_end")
           if getattr(type(cb), name) is not getattr(keras.callbacks.Callback, name)]
    return bool(own) and not getattr(cb, "async_safe", False)


@pytest.mark.core
def test_the_standard_callbacks_have_no_per_step_hook(tmp_path):
    cbs, _, _ = lifecycle.standard_callbacks(TrainSection(), str(tmp_path))
    blocking = [type(cb).__name__ for cb in cbs if _has_batch_hook(cb)]
    assert blocking == []
    # Where the backend allows it (JAX, PyTorch), Keras then dispatches steps asynchronously.
    callback_list = keras.callbacks.CallbackList(cbs)
    assert callback_list._async_train == keras.src.backend.IS_THREAD_SAFE
    # Keras' own per-batch NaN check would block it: the proof that the test can fail.
    assert _has_batch_hook(keras.callbacks.TerminateOnNaN())


class _Model:
    stop_training = False


def test_step_counter_counts_whole_epochs_and_nan_stops_at_the_epoch_end():
    counter = zoo_callbacks.StepCounter()
    counter.set_params({"steps": 25, "epochs": 4})
    counter.on_epoch_end(0, {"loss": 2.0})
    counter.on_epoch_end(1, {"loss": 1.5})
    assert counter.steps == 50

    stop = zoo_callbacks.StopOnNaN()
    model = _Model()
    stop.set_model(model)
    stop.on_epoch_end(0, {"loss": 1.0})
    assert not model.stop_training
    for bad in (math.nan, math.inf):
        model.stop_training = False
        stop.on_epoch_end(1, {"loss": bad})
        assert model.stop_training


def test_steady_rate_leaves_out_the_first_epoch():
    from kerazoo.training.callbacks import StepCounter, TrainingClock, steady_rate

    clock, counter = TrainingClock(), StepCounter()
    clock.epoch_seconds, counter.steps = [5.0, 1.0, 3.0], 30  # 10 steps an epoch; the first one compiled
    assert steady_rate(clock, counter, per_step=8) == pytest.approx(20 * 8 / 4.0)
    clock.epoch_seconds, counter.steps = [5.0], 10
    assert steady_rate(clock, counter, per_step=8) is None
