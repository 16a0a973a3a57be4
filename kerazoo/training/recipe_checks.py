"""Recipe checks that look across sections: a task against its arch, [distribute], ``model.init_from``.

Split from ``kerazoo.training.recipes`` (which parses TOML and checks single
values) so each module stays small; ``recipes`` re-exports ``check_init_from``.
"""

import os

from kerazoo.models import get_arch
from kerazoo.training.recipe_schema import STRATEGIES, TASKS, RecipeError, tasks_of


def fail(where, key, message):
    """Raises the one recipe error format: the file, the key, what is wrong.

    Args:
        where: the recipe file.
        key: the dotted key, e.g. ``train.seq_len``.
        message: what is wrong with its value.

    Raises:
        RecipeError: always.
    """
    raise RecipeError(f"{where}: '{key}' {message}")


def check_task(recipe, where):
    """Rejects a task the arch cannot train for, and bad task settings.

    Args:
        recipe: the parsed ``Recipe``.
        where: the recipe file, for messages.

    Raises:
        RecipeError: naming the key.
    """
    from kerazoo.models.classifier import POOLINGS

    s = recipe.task
    if s.kind and s.kind not in TASKS:
        fail(where, "task.kind", f"must be one of {', '.join(TASKS)}, got '{s.kind}'")
    arch = get_arch(recipe.arch)
    allowed = tasks_of(arch)
    if recipe.task_kind not in allowed:
        fail(where, "task.kind", f"'{recipe.task_kind}' is not a task of arch '{arch.name}'; "
                                  f"it trains for {', '.join(allowed)}")
    if s.pooling and s.pooling not in POOLINGS:
        fail(where, "task.pooling", f"must be one of {', '.join(POOLINGS)}, got '{s.pooling}'")
    if s.pooling == "cls" and recipe.arch != "bert":
        fail(where, "task.pooling", f"'cls' needs a bert encoder; use 'mean' or 'last' for '{recipe.arch}'")
    if not 0.0 <= s.classifier_dropout < 1.0:
        fail(where, "task.classifier_dropout", f"must be in [0, 1), got {s.classifier_dropout}")
    if not 0.0 < s.mask_rate < 1.0:
        fail(where, "task.mask_rate", f"must be in (0, 1), got {s.mask_rate}")
    if recipe.train.windows == "random" and recipe.task_kind != "causal_lm":
        fail(where, "train.windows", f"'random' is for causal_lm training; task '{recipe.task_kind}' cuts its own examples")
    if recipe.init_from and recipe.task_kind in ("masked_lm", "ngram"):
        fail(where, "model.init_from", f"is for fine-tuning tasks (causal_lm, sft, classify); not for {recipe.task_kind}")
    if recipe.task_kind == "classify" and not recipe.data.label_column:
        fail(where, "data.label_column", "must not be empty for a classify task")
    if recipe.task_kind == "sft":
        if "{}" not in s.prompt_format:
            fail(where, "task.prompt_format", f"must contain {{}} where the prompt goes, got {s.prompt_format!r}")
        if recipe.data.source_column == recipe.data.target_column:
            fail(where, "data.target_column", "(the response) must differ from data.source_column (the prompt)")
        context = recipe.model.get("max_length")
        if context is not None and recipe.train.sample_tokens >= context - 1:
            fail(where, "train.sample_tokens", f"({recipe.train.sample_tokens}, the reply length) must be smaller "
                                                f"than model.max_length - 1 ({context - 1})")
    if recipe.task_kind == "seq2seq":
        d = recipe.data
        if not d.source_column or not d.target_column:
            fail(where, "data.source_column", "and data.target_column must name the source and target columns")
        if d.source_column == d.target_column:
            fail(where, "data.target_column", f"must differ from data.source_column ('{d.source_column}')")


def check_distribute(s, where):
    """Rejects impossible [distribute] values; device counts are checked at run time.

    Args:
        s: the ``DistributeSection``.
        where: the recipe file, for messages.

    Raises:
        RecipeError: naming the key.
    """
    if s.strategy not in STRATEGIES:
        fail(where, "distribute.strategy", f"must be one of {', '.join(STRATEGIES)}, got '{s.strategy}'")
    if s.devices < 0:
        fail(where, "distribute.devices", f"must not be negative, got {s.devices}")
    if s.devices and s.strategy == "none":
        fail(where, "distribute.devices", f"({s.devices}) needs distribute.strategy = \"data_parallel\"")


def check_init_from(path, arch, where="<recipe>"):
    """Checks that ``model.init_from`` names a finished run of ``arch``.

    Args:
        path: the run folder.
        arch: the recipe's ``model.arch``.
        where: the recipe file, for messages.

    Raises:
        RecipeError: the folder or its model is missing, or it is another arch.
    """
    import json

    if not os.path.isdir(path):
        raise RecipeError(f"{where}: 'model.init_from' run folder {path} does not exist")
    meta = os.path.join(path, "metrics.json")
    if not os.path.isfile(os.path.join(path, "model.keras")) or not os.path.isfile(meta):
        raise RecipeError(f"{where}: 'model.init_from' {path} is not a finished run folder "
                          "(no model.keras / metrics.json)")
    with open(meta, encoding="utf-8") as f:
        found = json.load(f).get("arch")
    if found != arch:
        raise RecipeError(f"{where}: 'model.arch' is '{arch}' but the run at {path} is a '{found}'")
