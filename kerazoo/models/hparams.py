"""Hyper-parameter dataclasses shared by the model families.

Each architecture describes its hyper-parameters as a dataclass whose fields
carry a ``help`` string in their metadata; the registry uses those to list the
zoo (``kerazoo models``) and to validate what a recipe or a caller passes.
"""

import dataclasses
import math
import typing


def field(default, help):
    """A dataclass field with a default and a one-line description.

    Args:
        default: the default value.
        help: what the hyper-parameter controls, shown by ``kerazoo models``.

    Returns:
        A ``dataclasses.field``.
    """
    return dataclasses.field(default=default, metadata={"help": help})


def describe(config_cls):
    """Lists a config dataclass's fields.

    Args:
        config_cls: a hyper-parameter dataclass.

    Returns:
        A list of ``(name, type name, default, help)`` tuples, in field order.
    """
    hints = typing.get_type_hints(config_cls)
    rows = []
    for f in dataclasses.fields(config_cls):
        types = [t for t in (typing.get_args(hints[f.name]) or (hints[f.name],)) if t is not type(None)]
        type_name = "|".join(t.__name__ for t in types)
        if len(types) < len(typing.get_args(hints[f.name])):
            type_name += "|None"
        rows.append((f.name, type_name, f.default, f.metadata.get("help", "")))
    return rows


def _check_type(name, value, hint):
    """Raises ValueError unless ``value`` fits the annotation ``hint``."""
    allowed = typing.get_args(hint) or (hint,)
    if value is None:
        if type(None) in allowed:
            return
        raise ValueError(f"hyper-parameter '{name}' must not be empty")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"hyper-parameter '{name}' must be a finite number, got {value!r}")
    for t in allowed:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if t is bool and isinstance(value, bool):
            return
        if t is str and isinstance(value, str):
            return
    names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed if t is not type(None))
    raise ValueError(
        f"hyper-parameter '{name}' must be {names}, got {value!r} ({type(value).__name__})"
    )


def make_config(config_cls, arch, values):
    """Builds a validated config from user-given values.

    Args:
        config_cls: the architecture's hyper-parameter dataclass.
        arch: the architecture name, for error messages.
        values: a mapping of hyper-parameter names to values.

    Returns:
        An instance of ``config_cls``.

    Raises:
        ValueError: on an unknown name, a wrong type or an impossible value
            (the dataclass's ``validate`` method decides what is possible).
    """
    known = {f.name for f in dataclasses.fields(config_cls)}
    for name in values:
        if name not in known:
            raise ValueError(
                f"unknown hyper-parameter '{name}' for arch '{arch}'; "
                f"valid ones: {', '.join(sorted(known))}"
            )
    hints = typing.get_type_hints(config_cls)
    for name, value in values.items():
        _check_type(name, value, hints[name])
    config = config_cls(**values)
    config.validate()
    return config


def require_positive(config, *names):
    """Raises ValueError if any named integer field is not positive."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ValueError(f"hyper-parameter '{name}' must be positive, got {value}")


def require_dropout(config, name="dropout"):
    """Raises ValueError unless the dropout rate is in [0, 1)."""
    value = getattr(config, name)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"hyper-parameter '{name}' must be in [0, 1), got {value}")
