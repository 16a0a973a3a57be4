"""The check shared by the plain-PyTorch mirrors' parity tests (gpt's and llama's)."""

import numpy as np
from keras import ops


def check_mirror_against_chunked_step(model, step, x, length):
    """Runs a model's torch mirror and its ``keras.ops`` chunked step side by side on ``x``.

    A 4-position prefill, then one position at a time: the mirror's logits
    must equal ``call_with_chunk``'s (a chunk spanning the whole cache) to
    1e-5, and both must write the same keys and values.

    Args:
        model: a gpt or llama on the torch backend.
        step: its ``TorchStep``.
        x: int ids ``(rows, 10)``.
        length: the cache length.

    Returns:
        The mirror's cache, for further checks of its layout.
    """
    import torch

    rows = x.shape[0]
    cache = model.init_cache(rows, length)
    chunk, weights = model.read_chunk(cache, 0, length), model.decode_weights()
    torch_cache = model.init_cache(rows, length)
    for begin, end in [(0, 4)] + [(t, t + 1) for t in range(4, 10)]:
        expected, chunk = model.call_with_chunk(x[:, begin:end], cache, chunk, begin, 0, weights)
        with torch.inference_mode():
            got = step(torch.as_tensor(x[:, begin:end]).long(), torch_cache, begin)
        np.testing.assert_allclose(got.numpy(), ops.convert_to_numpy(ops.stop_gradient(expected)), atol=1e-5)
    for mirror, keras_ops in zip(torch_cache, chunk):
        np.testing.assert_allclose(mirror.numpy()[:, :, :10], ops.convert_to_numpy(keras_ops)[:, :, :10], atol=1e-5)
    return torch_cache
