"""Tracing model code into a graph that runs without XLA.

Keras' TensorFlow backend implements ``keras.ops.slice_update`` with
``XlaDynamicUpdateSlice``, an XLA op. Inside ``jit_compile`` functions that
is the fastest choice, but TF Serving runs graphs without XLA by default, so
an exported graph must not contain it. While the export traces the model's
cached-decoding step, ``portable_ops()`` swaps in an equivalent made of plain
TensorFlow ops (pad + select), which every TF runtime can run on any device.
The swap is trace-time only and undone on exit; ``xla_ops`` lets the export
check that no XLA op slipped into the portable signatures through another
route (``generate_xla``, compiled by XLA on purpose, is traced outside the
swap and left out of that check: ``signature_functions``).
"""

import contextlib

import keras
import tensorflow as tf


def _single_position_axis(inputs, start_indices, updates):
    """The axis of a one-position write (the decoding step's cache update), or None.

    That is: ``updates`` has size 1 on one axis and, on every other axis,
    starts at 0 and spans the whole input (or the sizes are unknown).
    """
    axes = [a for a, size in enumerate(updates.shape) if size == 1 and inputs.shape[a] != 1]
    if len(axes) != 1:
        return None
    for a, (size, full) in enumerate(zip(updates.shape, inputs.shape)):
        if a != axes[0] and not (isinstance(start_indices[a], int) and start_indices[a] == 0
                                 and (size is None or full is None or size == full)):
            return None
    return axes[0]


def slice_update(inputs, start_indices, updates):
    """``keras.ops.slice_update`` in plain TensorFlow ops.

    A one-position write (each decoding step's KV-cache update) is a single
    select against a position mask, broadcasting ``updates``; any other block
    is padded to full size and selected.

    Args:
        inputs: the tensor to update.
        start_indices: one start index per axis (ints or scalar tensors).
        updates: the block written at ``start_indices``.

    Returns:
        ``inputs`` with the block replaced by ``updates``.
    """
    inputs = tf.convert_to_tensor(inputs)
    updates = tf.cast(updates, inputs.dtype)
    axis = _single_position_axis(inputs, start_indices, updates)
    if axis is not None:
        shape = [1] * inputs.shape.rank
        shape[axis] = -1
        at = tf.equal(tf.range(tf.shape(inputs)[axis]), tf.cast(start_indices[axis], tf.int32))
        out = tf.where(tf.reshape(at, shape), updates, inputs)
    else:
        start = tf.stack([tf.cast(i, tf.int32) for i in start_indices])
        paddings = tf.stack([start, tf.shape(inputs) - start - tf.shape(updates)], axis=1)
        inside = tf.pad(tf.ones_like(updates, dtype=tf.bool), paddings)
        out = tf.where(inside, tf.pad(updates, paddings), inputs)
    # Dynamic shapes lose the static shape; the loops that carry this tensor
    # need it back.
    return tf.ensure_shape(out, inputs.shape)


@contextlib.contextmanager
def portable_ops():
    """Within this block, ``keras.ops.slice_update`` traces to plain TF ops."""
    original = keras.ops.slice_update
    keras.ops.slice_update = slice_update
    try:
        yield
    finally:
        keras.ops.slice_update = original


def _callees(node, library):
    """The library functions a node calls: its op, or the functions in its attributes."""
    names = [node.op] if node.op in library else []
    for attr in node.attr.values():
        if attr.HasField("func"):
            names.append(attr.func.name)
        names.extend(f.name for f in attr.list.func)
    return names


def signature_functions(meta_graph, names):
    """The library functions that the signatures ``names`` of a MetaGraphDef can call.

    Args:
        meta_graph: a ``MetaGraphDef`` of a SavedModel.
        names: signature keys.

    Returns:
        A set of function names (every function reachable from the
        signatures' output nodes, through calls, loops and branches).
    """
    graph = meta_graph.graph_def
    library = {f.signature.name: f for f in graph.library.function}
    nodes = {n.name: n for n in graph.node}
    todo = []
    for name in names:
        for info in meta_graph.signature_def[name].outputs.values():
            todo.extend(_callees(nodes[info.name.split(":")[0]], library))
    seen = set()
    while todo:
        name = todo.pop()
        if name not in seen and name in library:
            seen.add(name)
            for node in library[name].node_def:
                todo.extend(_callees(node, library))
    return seen


def xla_ops(graph_def, functions=None):
    """Names the XLA-only ops of a GraphDef, its function library included.

    Args:
        graph_def: a ``tf.compat.v1.GraphDef``.
        functions: only these library functions (e.g. ``signature_functions``
            of the portable signatures), without the top-level nodes; None:
            the whole graph.

    Returns:
        A sorted list of op type names starting with ``Xla``.
    """
    nodes = list(graph_def.node) if functions is None else []
    for function in graph_def.library.function:
        if functions is None or function.signature.name in functions:
            nodes.extend(function.node_def)
    return sorted({node.op for node in nodes if node.op.startswith("Xla")})
