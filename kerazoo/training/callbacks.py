"""Keras callbacks kerazoo adds to the standard ones."""

import time

import keras


class TrainingClock(keras.callbacks.Callback):
    """Measures time spent in training steps, excluding validation.

    Keras' progress bar reports time per epoch including the validation pass;
    tokens/s must count training alone, so we time the two separately.
    """

    def __init__(self):
        super().__init__()
        self.train_seconds = 0.0
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
            self.train_seconds += time.perf_counter() - self._epoch_start - self._test_seconds
            self._epoch_start = None


class StepCounter(keras.callbacks.Callback):
    """Counts optimizer steps run by this process (for tokens seen)."""

    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
