"""What a training task plugs into the run lifecycle (``kerazoo.training.lifecycle``).

A task says what differs between causal LM, masked LM, classification and
seq2seq: how its data is read and batched, which model it compiles, how it is
scored, which extra files its run folder holds, and how the command line
prints its result. The lifecycle does the rest the same way for every task.
"""

import dataclasses

import keras


@dataclasses.dataclass
class TaskData:
    """A task's prepared inputs.

    Attributes:
        tokenizer: the tokenizer the model reads with (saved as ``tokenizer/``).
        train_ds: the endless, seeded training batches.
        val_ds: the validation batches of the checks during ``fit``.
        val_steps: validation batches per check.
        extra: whatever else the task's ``build_model`` / ``evaluate`` need.
    """

    tokenizer: object
    train_ds: object
    val_ds: object
    val_steps: int
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Evaluation:
    """A task's scores on held-out data.

    Attributes:
        metrics: entries for ``metrics.json`` (``val_loss`` and the task's own).
        sample: a sample output ("" for tasks that do not generate).
        extra: outputs ``artifacts`` writes (e.g. every held-out translation).
    """

    metrics: dict
    sample: str = ""
    extra: dict = dataclasses.field(default_factory=dict)


class Task:
    """Base class of the training tasks; subclasses fill in what differs.

    The lifecycle calls, in order: ``check``, ``prepare``, ``build_model``
    (in the dtype policy and distribution scope), ``describe``, then ``fit``
    runs, then ``single_device_copy`` (several replicas only), ``evaluate``,
    ``unit``, ``artifacts``. The CLI prints a finished run with ``summary``.
    """

    kind = ""  # the recipe's [task] kind

    def check(self, recipe):
        """Checks what would be the likeliest mistake first (nothing by default).

        Args:
            recipe: the validated recipe.
        """

    def prepare(self, recipe, tokenizer, log):
        """Reads, splits and tokenizes the data; trains the tokenizer if needed.

        Args:
            recipe: the validated recipe.
            tokenizer: a tokenizer to reuse (given, or the resumed run's), or None.
            log: where progress lines go.

        Returns:
            A ``TaskData``.
        """
        raise NotImplementedError

    def build_model(self, recipe, data):
        """Builds and compiles the model.

        Args:
            recipe: the validated recipe.
            data: this task's ``TaskData``.

        Returns:
            The compiled ``keras.Model``.
        """
        raise NotImplementedError

    def describe(self, recipe, model):
        """The progress line about the model and its training (after ``model: ``)."""
        t = recipe.train
        return (f"{recipe.arch}, {model.count_params():,} parameters; "
                f"{t.steps} steps of {t.batch_size}x{t.seq_len} tokens")

    def train(self, model, data, log, fit):
        """Trains the model: by default ``fit()``, the lifecycle's ``model.fit`` with its callbacks.

        A model that is counted rather than fitted (the n-gram) overrides this.

        Args:
            model: the built model.
            data: this task's ``TaskData``.
            log: where progress lines go.
            fit: runs the standard ``model.fit``.

        Returns:
            ``(history, clock, counter)``: the per-check history, an object
            with ``train_seconds`` and one with ``steps`` (optionally ``seen``,
            the units trained on when they are not ``steps`` batches).
        """
        return fit()

    def single_device_copy(self, model, recipe, data):
        """The trained model outside the data-parallel engine.

        Evaluation, sampling and saving are one-device work: a distributed
        model would run ``predict`` through the strategy and its variables
        would be mirrored ones. The copy is rebuilt from the model's own
        config (its dtype policy included) and takes its weights.

        Args:
            model: the trained model.
            recipe: the recipe.
            data: this task's ``TaskData``.

        Returns:
            A model with the same weights.
        """
        plain = type(model).from_config(model.get_config())
        plain.set_weights([keras.ops.convert_to_numpy(w) for w in model.get_weights()])
        return plain

    def evaluate(self, model, recipe, data, log):
        """Scores the trained model on the whole held-out split.

        Returns:
            An ``Evaluation``.
        """
        raise NotImplementedError

    def unit(self, recipe):
        """What one training step consumes, for ``<unit>_seen`` and ``<unit>_per_sec``.

        Returns:
            ``(unit name, count per step)``; by default tokens of a
            ``batch_size x seq_len`` batch.
        """
        return "tokens", recipe.train.batch_size * recipe.train.seq_len

    def artifacts(self, recipe, data, evaluation):
        """Extra files of the run folder.

        Returns:
            ``{file name: text}`` (none by default).
        """
        return {}

    def summary(self, result):
        """The lines the command line prints for a finished run.

        Args:
            result: the ``RunResult``.

        Returns:
            A list of lines: the task's scores, the training line, the run folder.
        """
        return [*self.score_lines(result), training_line(result.metrics), f"run folder: {result.path}"]

    def score_lines(self, result):
        """The lines of ``summary`` about the task's scores (and sample)."""
        return []


def training_line(m):
    """``training: N steps, X <unit>, Y <unit>/s, Zs`` from a run's metrics.

    Args:
        m: the run's metrics.

    Returns:
        The line.
    """
    unit = next(key[: -len("_seen")] for key in m if key.endswith("_seen"))
    rate = m.get(f"{unit}_per_sec") or 0
    rate_text = f"{rate:,.1f}" if unit == "texts" else f"{rate:,.0f}"
    return (f"training: {m['steps']} steps, {m[f'{unit}_seen']:,} {unit}, "
            f"{rate_text} {unit}/s, {m['wall_seconds']:.0f}s")
