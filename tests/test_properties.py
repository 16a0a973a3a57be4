"""Property tests (hypothesis) of the round-two checks: names, recipe integers, REST bodies.

Each property says what any input must give: accepted and safe, or one
``ValueError`` (a user error) — never another exception, never a silent wrap.
"""

import json
import math
import os
import unittest.mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerazoo.serving import exporter, rest
from kerazoo.training.recipes import RecipeError, parse_recipe

INT32 = (-2**31, 2**31 - 1)
NAME_CHARS = st.characters(codec="utf-8") | st.sampled_from(list("aZ09_.-/\\\n\r\t \x00"))
TINY_MODEL = {"arch": "gpt", "max_length": 32, "num_layers": 1, "num_heads": 2, "hidden_dim": 16}


def _safe_component(name, base):
    """A name that stays one plain folder inside ``base``."""
    inside = os.path.normpath(os.path.join(base, name))
    return (os.path.dirname(inside) == base and "\n" not in name and not name.startswith((".", "-"))
            and 0 < len(name.encode("utf-8")) <= 200)


@settings(max_examples=150, deadline=None)
@given(name=st.text(NAME_CHARS, max_size=260) | st.sampled_from(["a" * 200, "a" * 201, "ok\n", "..", "a/../b"]))
def test_any_name_is_a_safe_folder_or_refused(name):
    for check in (exporter.check_name,
                  lambda n: parse_recipe({"name": n, "model": dict(TINY_MODEL)}, "r.toml").name):
        try:
            accepted = check(name)
        except (ValueError, RecipeError):
            continue
        assert accepted == name and _safe_component(name, "/base"), repr(name)


INT_FIELDS = ["train.steps", "train.eval_every", "train.batch_size", "train.seq_len", "train.seed",
              "train.warmup_steps", "train.sample_tokens", "train.eval_batches", "model.max_length",
              "model.hidden_dim", "model.num_layers", "tokenizer.vocab_size"]


@settings(max_examples=100, deadline=None)
@given(field=st.sampled_from(INT_FIELDS),
       value=st.integers() | st.integers(-2**70, 2**70) | st.sampled_from([2**31, 2**31 - 1, -2**31 - 1, 2**32 + 3, 2**63]))
def test_any_recipe_integer_is_in_range_or_refused(field, value):
    section, key = field.split(".")
    raw = {"model": dict(TINY_MODEL), "train": {"steps": 4, "eval_every": 2, "warmup_steps": 1, "seq_len": 16}}
    raw.setdefault(section, {})[key] = value
    if section == "tokenizer":
        raw["tokenizer"]["kind"] = "bpe"
    try:
        recipe = parse_recipe(raw, "r.toml")
    except RecipeError:
        return
    data = recipe.to_dict()
    ints = [v for part in data.values() if isinstance(part, dict) for v in part.values()
            if isinstance(v, int) and not isinstance(v, bool)]
    assert all(INT32[0] <= v <= INT32[1] for v in ints), (field, value)


JSON_SCALARS = (st.integers() | st.integers(-2**65, 2**65) | st.sampled_from([10**400, -10**400, 1e39, 2**128])
                | st.floats(allow_nan=True, allow_infinity=True)
                | st.booleans() | st.none() | st.text(max_size=5))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(["max_new_tokens", "top_k", "seed", "temperature", "top_p"]), column=JSON_VALUES)
def test_any_rest_value_reaches_the_graph_unchanged_or_is_refused(name, column):
    import tensorflow as tf

    spec = {"max_new_tokens": tf.int32, "top_k": tf.int32, "seed": tf.int32,
            "temperature": tf.float32, "top_p": tf.float32}[name]
    spec = tf.TensorSpec([None], spec, name=name)
    try:
        rest.check_values(name, spec, column)
    except ValueError:
        return
    try:
        tensor = tf.constant(column, dtype=spec.dtype)
    except (TypeError, ValueError):
        return  # refused by the conversion itself (a string, a ragged list): a user error in predict
    if tensor.shape.rank != spec.shape.rank:
        return  # refused by predict's rank check
    flat = tensor.numpy().reshape(-1).tolist()
    leaves = _flatten(column)
    if spec.dtype.is_integer:
        assert flat == leaves, "an integer wrapped on its way into the graph"
    else:
        assert all(math.isfinite(v) for v in flat)


def _flatten(value):
    return [x for item in value for x in _flatten(item)] if isinstance(value, list) else [value]


_loaded = {}


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.fixed_dictionaries({}, optional={
    "signature_name": st.sampled_from(["greedy", "serving_default", "nope"]) | JSON_VALUES,
    "instances": st.lists(st.fixed_dictionaries({"prompts": st.text(max_size=8)}, optional={
        "max_new_tokens": JSON_SCALARS, "temperature": JSON_SCALARS, "top_k": JSON_SCALARS,
        "top_p": JSON_SCALARS, "seed": JSON_SCALARS}), max_size=3) | JSON_VALUES,
}))
def test_any_rest_body_is_answered_or_refused_in_one_line(body, tiny_run_and_export):
    export = tiny_run_and_export[1]
    if export not in _loaded:
        _loaded[export] = rest.load_saved_model(export)
    with unittest.mock.patch.object(rest, "load_saved_model", lambda _: _loaded[export]):
        try:
            answer = rest.predict(export, json.dumps(body))
        except ValueError as e:
            assert "\n" not in str(e).strip(), "one line"
            return
    assert isinstance(answer, dict) and ("predictions" in answer or "outputs" in answer)
