"""The recipe runner: ``run_recipe`` trains one recipe through its task's run lifecycle.

    recipe -> distribution engine -> task plug-in (``kerazoo.training.tasks``)
           -> ``kerazoo.training.lifecycle.run_task`` -> run folder

It also keeps the names scripts and notebooks import from here:
``RunResult``, ``load_run``, ``prepare``, ``compile_model``,
``jit_compile_for``, ``build_optimizer``.
"""

import dataclasses
import tempfile

from kerazoo.training import distribute
from kerazoo.training.lifecycle import RunResult, run_task
from kerazoo.training.optim import ADAM_BETA_2, build_optimizer, jit_compile_for, make_optimizer
from kerazoo.training.runs import load_run, resolve_tokenizer_path
from kerazoo.training.tasks import get_task
from kerazoo.training.tasks.causal_lm import Prepared, compile_model, prepare

__all__ = [
    "ADAM_BETA_2",
    "Prepared",
    "RunResult",
    "build_optimizer",
    "compile_model",
    "jit_compile_for",
    "load_run",
    "make_optimizer",
    "prepare",
    "resolve_tokenizer_path",
    "run_recipe",
]


def run_recipe(recipe, runs_dir="runs", resume=False, tokenizer=None, verbose=1, log=print, callbacks=None):
    """Trains, evaluates and saves one recipe.

    Every task (``causal_lm``, ``masked_lm``, ``classify``, ``seq2seq``) goes
    through the same lifecycle: the same run folder, resume, checkpoints and
    crash safety. With ``[distribute] strategy = "data_parallel"`` every
    process of a cluster calls this with the same recipe; they train in
    step, and only the chief keeps a run folder (the others work in a
    temporary one).

    Args:
        recipe: a validated ``Recipe``.
        runs_dir: where run folders go.
        resume: continue the unfinished run of the same name.
        tokenizer: reuse this tokenizer instead of the recipe's.
        verbose: Keras ``fit`` verbosity (1: progress bar).
        log: where progress lines go.
        callbacks: extra Keras callbacks for ``fit``.

    Returns:
        A ``RunResult``.

    Raises:
        ValueError: bad input (corpus, tokenizer settings, sizes); nothing is
            written in that case.
        RuntimeError: the loss became NaN.
    """
    task = get_task(recipe.task_kind)
    # First: joining several JAX hosts must happen before any JAX computation.
    parallel = distribute.setup(recipe.distribute, recipe.train.batch_size, recipe.path or "<recipe>")
    if parallel.is_chief:
        return run_task(task, recipe, parallel, runs_dir, resume, tokenizer, verbose, log, callbacks)
    with tempfile.TemporaryDirectory(prefix="kerazoo-worker-") as scratch:
        result = run_task(task, recipe, parallel, scratch, False, tokenizer, 0, lambda *_: None, callbacks)
    return dataclasses.replace(result, path="")
