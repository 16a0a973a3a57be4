"""Recipes: TOML files that name data, tokenizer, model and training settings.

A recipe is data, never code. It is parsed with ``tomllib`` into typed
sections and validated before any work starts: an unknown key, a wrong type or
an impossible value fails with a message that names the file and the key.

    name = "pydocs_gpt"
    [data]       where the text comes from and how it is split
    [tokenizer]  which shared tokenizer to train (or load)
    [model]      arch = "...", plus that arch's hyper-parameters
    [train]      model.fit settings
    [distribute] data-parallel training over devices and hosts (optional)
    [task]       what the model is trained for (optional; the arch's default)

The sections themselves (``DataSection``, ``TrainSection``, ``Recipe``, ...)
live in ``kerazoo.training.recipe_schema`` and are re-exported here.
"""

import dataclasses
import math
import os
import tomllib
import typing

from kerazoo import data as data_lib
from kerazoo import text as tokenizers_lib
from kerazoo.models import get_arch, make_hparams
from kerazoo.training.recipe_checks import check_distribute, check_init_from, check_task, fail  # noqa: F401
from kerazoo.training.recipe_schema import (  # noqa: F401  (re-exported: the public recipe API)
    DEFAULT_VOCAB_SIZE,
    NAME_MAX,
    NAME_RE,
    PRECISIONS,
    SECTIONS,
    STRATEGIES,
    TASKS,
    DataSection,
    DistributeSection,
    Recipe,
    RecipeError,
    TaskSection,
    TokenizerSection,
    TrainSection,
    tasks_of,
    vocab_size_for,
)



def _type_ok(value, hint):
    """Whether a TOML value fits a field annotation (ints are accepted as floats)."""
    for t in typing.get_args(hint) or (hint,):
        if t is type(None) and value is None:
            return True
        if t is bool and isinstance(value, bool):
            return True
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if t is str and isinstance(value, str):
            return True
    return False


def _type_name(hint):
    names = [getattr(t, "__name__", str(t)) for t in (typing.get_args(hint) or (hint,)) if t is not type(None)]
    return " or ".join(names)


def _parse_section(cls, raw, where, section):
    """Builds one section dataclass, rejecting unknown keys and wrong types."""
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: [{section}] must be a table")
    hints = typing.get_type_hints(cls)
    for key, value in raw.items():
        if key not in hints:
            raise RecipeError(f"{where}: unknown key '{section}.{key}'; valid keys: {', '.join(hints)}")
        if not _type_ok(value, hints[key]):
            raise RecipeError(
                f"{where}: '{section}.{key}' must be {_type_name(hints[key])}, got {value!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise RecipeError(f"{where}: '{section}.{key}' must be a finite number, got {value!r}")
    values = {k: (float(v) if hints[k] is float else v) for k, v in raw.items()}
    return cls(**values)


# Integers a recipe may hold: an int32 (graphs and counters count in it), and
# for a tensor's dimension (context, widths, vocabulary, batch) at most 2**20,
# far beyond any model kerazoo trains on one machine; larger ones would only
# fail later, out of memory, after the data was read.
INT32_MAX = 2**31 - 1
MAX_SIZE = 1 << 20


def _check_integer_ranges(recipe, where):
    """Integers reach int32 tensors and counters: larger ones would wrap, so they are refused here."""
    for section in SECTIONS:
        for key, value in dataclasses.asdict(getattr(recipe, section)).items():
            if isinstance(value, int) and not isinstance(value, bool) and not -INT32_MAX - 1 <= value <= INT32_MAX:
                fail(where, f"{section}.{key}", f"({value:,}) is out of range: at most {INT32_MAX:,}")
    for key in ("seq_len", "batch_size", "sample_tokens"):
        if getattr(recipe.train, key) > MAX_SIZE:
            fail(where, f"train.{key}", f"({getattr(recipe.train, key):,}) is too large: sizes are at most {MAX_SIZE:,}")
    if (recipe.tokenizer.vocab_size or 0) > MAX_SIZE:
        fail(where, "tokenizer.vocab_size", f"({recipe.tokenizer.vocab_size:,}) is too large: at most {MAX_SIZE:,}")


def _check_values(recipe, where):
    """Rejects impossible values, naming the key."""
    _check_integer_ranges(recipe, where)
    d, t, k = recipe.data, recipe.train, recipe.tokenizer
    if not d.source:
        fail(where, "data.source", "must not be empty")
    if not 0.0 < d.val_fraction < 1.0:
        fail(where, "data.val_fraction", f"must be in (0, 1), got {d.val_fraction}")
    if d.split not in data_lib.SPLIT_MODES:
        fail(where, "data.split", f"must be one of {', '.join(data_lib.SPLIT_MODES)}, got '{d.split}'")
    if d.boundary not in data_lib.BOUNDARIES:
        fail(where, "data.boundary", f"must be one of {', '.join(data_lib.BOUNDARIES)}, got '{d.boundary}'")
    if k.sample_bytes < 0:
        fail(where, "tokenizer.sample_bytes", f"must not be negative, got {k.sample_bytes}")
    if k.kind not in tokenizers_lib.KINDS:
        fail(where, "tokenizer.kind", f"must be one of {', '.join(tokenizers_lib.KINDS)}, got '{k.kind}'")
    if k.kind == "byte" and k.vocab_size not in (None, tokenizers_lib.BYTE_VOCAB_SIZE):
        fail(where, "tokenizer.vocab_size", f"is fixed at {tokenizers_lib.BYTE_VOCAB_SIZE} for the byte tokenizer; leave it out")
    if k.vocab_size is not None and k.vocab_size <= 5:
        fail(where, "tokenizer.vocab_size", f"must be larger than the 5 special tokens, got {k.vocab_size}")
    for key in ("seq_len", "batch_size", "steps", "eval_every", "sample_tokens"):
        if getattr(t, key) <= 0:
            fail(where, f"train.{key}", f"must be positive, got {getattr(t, key)}")
    for key in ("eval_batches", "eval_tokens", "warmup_steps", "early_stopping_patience", "seed"):
        if getattr(t, key) < 0:
            fail(where, f"train.{key}", f"must not be negative, got {getattr(t, key)}")
    for key in ("lora_rank", "lora_alpha"):
        if getattr(t, key) < 0:
            fail(where, f"train.{key}", f"must not be negative, got {getattr(t, key)}")
    if t.lora_rank and not t.lora_targets.strip(" ,"):
        fail(where, "train.lora_targets", "must name at least one layer pattern when train.lora_rank is set")
    for key in ("weight_decay", "clipnorm", "sample_temperature"):
        if getattr(t, key) < 0:
            fail(where, f"train.{key}", f"must not be negative, got {getattr(t, key)}")
    if t.learning_rate <= 0:
        fail(where, "train.learning_rate", f"must be positive, got {t.learning_rate}")
    if not 0.0 <= t.min_lr_ratio <= 1.0:
        fail(where, "train.min_lr_ratio", f"must be in [0, 1], got {t.min_lr_ratio}")
    if t.steps % t.eval_every:
        fail(where, "train.steps", f"({t.steps}) must be a multiple of train.eval_every ({t.eval_every})")
    if t.warmup_steps >= t.steps:
        fail(where, "train.warmup_steps", f"({t.warmup_steps}) must be smaller than train.steps ({t.steps})")
    if t.windows not in data_lib.WINDOW_MODES:
        fail(where, "train.windows", f"must be one of {', '.join(data_lib.WINDOW_MODES)}, got '{t.windows}'")
    if t.precision not in PRECISIONS:
        fail(where, "train.precision", f"must be one of {', '.join(PRECISIONS)}, got '{t.precision}'")
    if isinstance(t.jit_compile, str) and t.jit_compile != "auto":
        fail(where, "train.jit_compile", f"must be true, false or \"auto\", got '{t.jit_compile}'")
    check_distribute(recipe.distribute, where)
    check_task(recipe, where)


def _parse_model(raw, where):
    """Validates the [model] table against the registry.

    With ``init_from`` the hyper-parameters are the pre-trained run's: the
    table holds ``init_from`` and, optionally, the matching ``arch``.
    """
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: [model] must be a table")
    if "init_from" in raw:
        init_from = raw["init_from"]
        if not isinstance(init_from, str) or not init_from:
            fail(where, "model.init_from", f"must be a non-empty string (a run folder), got {init_from!r}")
        extra = sorted(k for k in raw if k not in ("arch", "init_from"))
        if extra:
            fail(where, f"model.{extra[0]}", "cannot be set with model.init_from: the hyper-parameters "
                                              "are the pre-trained run's")
        if "arch" not in raw:
            raise RecipeError(f"{where}: missing key 'model.arch' (the arch of the run model.init_from names)")
        if not isinstance(raw["arch"], str):
            fail(where, "model.arch", "must be a string")
        try:
            get_arch(raw["arch"])
        except ValueError as e:
            raise RecipeError(f"{where}: [model] {e}") from None
        # The folder itself is checked when the recipe runs (check_init_from),
        # so a recipe stays valid data before its pre-training run exists.
        if os.path.isdir(init_from):
            check_init_from(init_from, raw["arch"], where)
        return {"arch": raw["arch"], "init_from": init_from}
    if "arch" not in raw:
        raise RecipeError(f"{where}: missing key 'model.arch'")
    try:
        get_arch(raw["arch"]) if isinstance(raw["arch"], str) else fail(where, "model.arch", "must be a string")
        config = make_hparams(raw["arch"], **{k: v for k, v in raw.items() if k != "arch"})
    except RecipeError:
        raise
    except ValueError as e:
        raise RecipeError(f"{where}: [model] {e}") from None
    hparams = dataclasses.asdict(config)
    for key, value in hparams.items():
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
            fail(where, f"model.{key}", f"({value:,}) is too large: sizes are at most {MAX_SIZE:,}")
    return {"arch": raw["arch"], **hparams}


def _parse_override(item):
    """Parses one ``section.key=value`` override; values are TOML literals."""
    if "=" not in item:
        raise RecipeError(f"--set {item!r}: expected section.key=value")
    key, text = item.split("=", 1)
    key = key.strip()
    if key.count(".") > 1 or not key:
        raise RecipeError(f"--set {item!r}: expected section.key=value")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word is taken as a string: --set model.arch=gpt
    return key, value


def apply_overrides(raw, overrides):
    """Applies ``--set section.key=value`` overrides to raw recipe data.

    Args:
        raw: the parsed TOML dict (modified in place).
        overrides: list of ``"section.key=value"`` strings.

    Returns:
        ``raw``.
    """
    for item in overrides or []:
        key, value = _parse_override(item)
        if "." in key:
            section, name = key.split(".")
            table = raw.setdefault(section, {})
            if not isinstance(table, dict):
                raise RecipeError(f"--set {item!r}: '{section}' is not a section")
            table[name] = value
        else:
            raw[key] = value
    return raw


def parse_recipe(raw, where="<recipe>"):
    """Validates raw recipe data.

    Args:
        raw: a dict as read from TOML.
        where: the file name, for messages.

    Returns:
        A ``Recipe``.

    Raises:
        RecipeError: naming the file and the offending key.
    """
    known = set(SECTIONS) | {"model", "name"}
    for key in raw:
        if key not in known:
            raise RecipeError(f"{where}: unknown key '{key}'; valid top-level keys: {', '.join(sorted(known))}")
    stem = os.path.splitext(os.path.basename(where))[0]
    # An explicit name is checked as given (an empty one is a mistake, not "the default").
    name = raw["name"] if "name" in raw else (stem if where.endswith(".toml") else "run")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RecipeError(f"{where}: 'name' must be letters, digits, '_', '-' or '.' (at most {NAME_MAX}), "
                          f"got {name if not isinstance(name, str) or len(name) < 60 else name[:40] + '...'!r}")
    sections = {s: _parse_section(cls, raw.get(s, {}), where, s) for s, cls in SECTIONS.items()}
    if "model" not in raw:
        raise RecipeError(f"{where}: missing section [model]")
    model = _parse_model(raw["model"], where)
    recipe = Recipe(name=name, model=model, path=where, **sections)
    _check_values(recipe, where)
    context = model.get("max_length")
    if recipe.task_kind != "causal_lm":
        # seq2seq batches are whole pairs, padded to their longest: no seq_len windows.
        if context is not None and recipe.train.seq_len > context and recipe.task_kind != "seq2seq":
            fail(where, "train.seq_len", f"({recipe.train.seq_len}) exceeds the model's context model.max_length ({context})")
        return recipe
    if context is not None and recipe.train.seq_len > context:
        fail(where, "train.seq_len", f"({recipe.train.seq_len}) exceeds the model's context model.max_length ({context})")
    if context is not None and recipe.train.sample_tokens >= context:
        fail(where, "train.sample_tokens", f"({recipe.train.sample_tokens}) must be smaller than model.max_length ({context})")
    return recipe


def load_recipe(path, overrides=None):
    """Reads, overrides and validates a recipe file.

    Args:
        path: the ``.toml`` file.
        overrides: optional ``["section.key=value", ...]``.

    Returns:
        A ``Recipe``.

    Raises:
        RecipeError: missing file, invalid TOML, or an invalid recipe.
    """
    from kerazoo.training.inputs import MAX_RECIPE_BYTES, read_bytes

    if os.path.isdir(path):
        raise RecipeError(f"recipe {path} is a folder, not a .toml file")
    if not os.path.lexists(path):
        raise RecipeError(f"recipe {path} does not exist")
    try:
        data = read_bytes(path, "recipe", MAX_RECIPE_BYTES)  # a regular file, 1 MiB at most
    except ValueError as e:
        raise RecipeError(str(e)) from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not valid TOML (not UTF-8 text)") from None
    except RecursionError:
        raise RecipeError(f"{path}: not valid TOML (nested too deeply)") from None
    return parse_recipe(apply_overrides(raw, overrides), where=path)


def dump_recipe(recipe):
    """The resolved recipe as TOML text.

    Args:
        recipe: a ``Recipe``.

    Returns:
        TOML text that ``load_recipe`` reads back to the same recipe.
    """
    import tomli_w

    data = recipe.to_dict()
    data["model"] = {k: v for k, v in data["model"].items() if v is not None}
    return tomli_w.dumps(data)
