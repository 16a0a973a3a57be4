"""Keras callbacks kerazoo adds to the standard ones.

None of them has a per-batch hook. Keras converts every step's logs to
Python numbers for any callback with an ``on_batch_end`` /
``on_train_batch_end`` of its own, on the training thread unless every such
callback is marked ``async_safe``: on JAX that waits for each step to finish
before the next is dispatched, so the host's Python work (the data
iterator, Keras' fit loop) no longer overlaps the step's computation. So
steps are counted and a NaN loss is caught once per epoch (one check).
"""

import math
import time

import keras


class TrainingClock(keras.callbacks.Callback):
    """Measures time spent in training steps, excluding validation.

    Keras' progress bar reports time per epoch including the validation pass;
    tokens/s must count training alone, so we time the two separately.
    ``epoch_seconds`` keeps each epoch's training time: the first one of a
    process also holds the step's trace and XLA compile, so a steady rate
    leaves it out (as peers' per-iteration timings leave out their first).
    """

    def __init__(self):
        super().__init__()
        self.train_seconds = 0.0
        self.epoch_seconds = []
        self._epoch_start = None
        self._test_start = None
        self._test_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._test_seconds = 0.0

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        if self._test_start is not None:
            self._test_seconds += time.perf_counter() - self._test_start
            self._test_start = None

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_start is not None:
            seconds = time.perf_counter() - self._epoch_start - self._test_seconds
            self.train_seconds += seconds
            self.epoch_seconds.append(seconds)
            self._epoch_start = None


class StepCounter(keras.callbacks.Callback):
    """Counts optimizer steps run by this process (for tokens seen), a whole epoch at a time.

    A kerazoo run only stops at an epoch's end (the NaN check, early
    stopping), so every epoch it finishes ran ``params["steps"]`` steps.
    """

    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_epoch_end(self, epoch, logs=None):
        self.steps += int(self.params.get("steps") or 0)


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the end of an epoch whose mean training loss is NaN or infinite.

    Keras' ``TerminateOnNaN`` checks every batch, which costs a host sync per
    step (see the module docstring). A NaN step makes the epoch's running
    mean loss NaN too (and the weights stay NaN after it), so the check at
    the epoch's end catches it, at most one epoch late; the run then fails
    with "training diverged" as before.
    """

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Epoch {epoch + 1}: the training loss is {loss}; stopping")
            self.model.stop_training = True


def steady_rate(clock, counter, per_step):
    """Units per second of training after this process's first epoch.

    Args:
        clock: the run's ``TrainingClock``.
        counter: its ``StepCounter`` (every epoch runs the same number of steps).
        per_step: units (tokens, rows) per optimizer step.

    Returns:
        The rate over the second and later epochs, or None when the process
        ran fewer than two.
    """
    epochs = len(clock.epoch_seconds)
    later = sum(clock.epoch_seconds[1:])
    if epochs < 2 or not later:
        return None
    return counter.steps * (epochs - 1) / epochs * per_step / later
