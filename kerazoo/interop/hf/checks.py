"""Checks of a checkpoint's ``config.json`` against its weights, before any model is built.

A ``config.json`` is user input whose sizes become layer counts and tensor
shapes. A size that is not a positive integer, exceeds the zoo's size limit,
or is not backed by the weights is refused here with one line: before these
checks, ``n_layer = 2**31`` over a two-layer checkpoint built layers until
memory ran out, and ``n_embd = 1e400`` ended in a traceback.
"""

import math
import re

from kerazoo.training.recipes import MAX_SIZE


def config_int(config, key, default=None):
    """A positive integer setting of ``config.json``, at most ``MAX_SIZE`` (as a recipe's sizes).

    Args:
        config: the parsed ``config.json``.
        key: the setting.
        default: its value when absent (None: required).

    Returns:
        The int.

    Raises:
        ValueError: absent without a default, not an int (floats, strings
            and booleans included), below 1 or above ``MAX_SIZE``.
    """
    value = config.get(key, default)
    if value is None:
        raise ValueError(f"config.json: missing key {key!r}")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIZE:
        raise ValueError(f"config.json: '{key}' must be an integer from 1 to {MAX_SIZE:,}, got {value!r}")
    return value


def config_float(config, key, default, upper=None):
    """A finite, non-negative number setting of ``config.json`` (an epsilon, a dropout rate).

    Args:
        config: the parsed ``config.json``.
        key: the setting.
        default: its value when absent.
        upper: the largest value allowed (exclusive), if any.

    Returns:
        The float.

    Raises:
        ValueError: not a number, NaN, infinite, negative or not below ``upper``.
    """
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
            or (upper is not None and value >= upper):
        bound = f" below {upper}" if upper is not None else ""
        raise ValueError(f"config.json: '{key}' must be a finite number from 0{bound}, got {value!r}")
    return float(value)


def check_layers(weights, pattern, num_layers, key):
    """Requires the weights to hold every layer ``0 .. num_layers - 1`` (checked before the model is built).

    Args:
        weights: ``{tensor name: array}``.
        pattern: a regex whose first group is a tensor name's layer index
            (``r"h\\.(\\d+)\\."``), matched at the start of the name.
        num_layers: the config's layer count.
        key: the config setting, for the message.

    Raises:
        ValueError: a layer the config asks for has no tensor.
    """
    found = {int(m.group(1)) for m in (re.match(pattern, name) for name in weights) if m}
    # Missing layers only: the importers refuse tensors their config leaves unused on their own.
    if not found.issuperset(range(num_layers)):
        held = f"{len(found)} layer(s)" + (f" numbered {min(found)} to {max(found)}" if found else "")
        raise ValueError(f"config.json: '{key}' is {num_layers:,} but the weights hold {held}")


def check_rows(weights, name, rows, key):
    """Requires the tensor ``name`` to have ``rows`` rows (a position table against its config size).

    Raises:
        ValueError: missing, or another row count.
    """
    if name not in weights:
        raise ValueError(f"the checkpoint has no tensor '{name}'")
    if weights[name].shape[0] != rows:
        raise ValueError(f"config.json: '{key}' is {rows:,} but '{name}' has {weights[name].shape[0]:,} rows")
