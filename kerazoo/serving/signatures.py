"""The serving signatures of an export: text in, text (or numbers) out.

Each builder returns ``{signature name: tf.function}``; every function takes
and returns a dict of tensors whose first axis is the batch, so TF Serving
accepts them in row ("instances") and columnar ("inputs") form, and its
server-side batching can merge requests. Causal LMs get:

- ``serving_default``: prompts plus per-row settings -> generated texts
- ``greedy``: prompts only -> greedy texts with the export's default length
- ``score``: texts -> log-likelihood, token count, perplexity, bits per byte
- ``chat`` (``sft`` models only): past exchanges and a new message -> the
  reply, the chat template applied in the graph (``chat_template``)

Classifiers get ``serving_default`` and ``classify``: texts -> label names,
label ids and probabilities.

``BUILDERS`` maps a model kind to its builder; the encoder and seq2seq
models add ``classify`` and ``translate`` the same way.
"""

import math

import tensorflow as tf

from kerazoo.decoding import loop_graph as graph_decode
from kerazoo.serving import chat_template, request
from kerazoo.text import packing
from kerazoo.text.special import PAD_ID

# Documented defaults of the settings (docs/serving.md, "Signatures of a language model").
DEFAULTS = {"max_new_tokens": 64, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}

_SETTINGS_SPECS = {
    "max_new_tokens": tf.TensorSpec([None], tf.int32, name="max_new_tokens"),
    "temperature": tf.TensorSpec([None], tf.float32, name="temperature"),
    "top_k": tf.TensorSpec([None], tf.int32, name="top_k"),
    "top_p": tf.TensorSpec([None], tf.float32, name="top_p"),
    "seed": tf.TensorSpec([None], tf.int32, name="seed"),
}


def new_token_cap(model, cap=None):
    """The most new tokens a request may ask for.

    Transformers: the context minus one (the prompt keeps at least its last
    token). Recurrent models have no context, so the export's ``cap`` bounds
    the work one request can ask for.
    """
    context = getattr(model, "max_length", None)
    if context is None:
        return int(cap or 1024)
    return min(context - 1, int(cap)) if cap else context - 1


def _generate(model, tokenizer, prompts, max_new_tokens, settings, cap, xla=False, stop=None, num_beams=None,
              ids=None):
    """Graph generation: the texts, new-token counts and kept prompt lengths.

    Args:
        ids: the prompts' ids (int32 ragged); None: the prompts as documents.
        xla: decode in the XLA-compiled loop (``generate_xla``) rather than
            the portable one; the tokens are the same.
        stop: string ``(rows, k)`` stop strings (see ``request``).
        num_beams: int32 ``(rows,)``; rows above 1 use beam search.
    """
    context = getattr(model, "max_length", None)
    rows = tf.shape(prompts)[0]
    ids = graph_decode.encode(tokenizer, prompts) if ids is None else ids
    new_tokens = request.per_row(graph_decode.clamp_new_tokens(max_new_tokens, cap), rows, 0)
    settings = {k: request.per_row(v, rows, DEFAULTS[k]) for k, v in settings.items()}
    tokens, lengths = graph_decode.fit_prompts(ids, new_tokens, context)

    def run(index, k):
        kept, budget = tf.gather(lengths, index), tf.gather(new_tokens, index)
        buffer = tf.gather(tokens, index)[:, :tf.reduce_max(kept)]
        picked = {name: tf.gather(v, index) for name, v in settings.items()}
        if xla:
            out = graph_decode.decode_xla(model, buffer, kept, budget, picked, context, num_beams=k)
        elif k > 1:
            out = graph_decode.beam_decode(model, buffer, kept, budget, k, context)
        else:
            out = graph_decode.decode(model, buffer, kept, budget, picked)
        generated = graph_decode.new_tokens_of(out, kept, budget)
        return {
            "texts": graph_decode.valid_utf8(tokenizer.detokenize(generated)),
            "token_counts": tf.cast(generated.row_lengths(), tf.int32),
            "prompt_tokens": kept,
        }

    empty = {"texts": tf.zeros([0], tf.string), "token_counts": tf.zeros([0], tf.int32),
             "prompt_tokens": tf.zeros([0], tf.int32)}
    beams = request.beams(tf.constant([1]) if num_beams is None else num_beams, rows)
    outputs = request.by_beams(beams, run, empty)
    if stop is not None:
        outputs["texts"] = request.cut_at_stop(outputs["texts"], stop, graph_decode.valid_utf8)
    return outputs


def _score(model, tokenizer, texts):
    """Per-text log-likelihood (nats), token count, perplexity and bits per byte.

    The text is scored after the end token (the document start), in windows
    of the model's context, exactly as ``kerazoo.score`` and the training
    evaluation do; log-probabilities are summed in float64.
    """
    ids = graph_decode.encode(tokenizer, texts)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    counts = tf.cast(targets.row_lengths(), tf.int32)
    longest = tf.maximum(tf.reduce_max(counts), 1)
    context = getattr(model, "max_length", None)
    window = longest if context is None else tf.constant(context)
    n_windows = (longest + window - 1) // window
    shape = tf.stack([tf.shape(counts)[0], n_windows * window])
    x = tf.reshape(inputs.to_tensor(PAD_ID, shape=shape), [-1, window])
    y = tf.reshape(targets.to_tensor(PAD_ID, shape=shape), [-1, window])
    logp = tf.nn.log_softmax(tf.cast(model(x, training=False), tf.float64), axis=-1)
    picked = tf.reshape(tf.gather(logp, y, batch_dims=2), shape)
    scored = tf.range(shape[1])[None, :] < counts[:, None]
    log_likelihood = tf.reduce_sum(tf.where(scored, picked, 0.0), axis=1)
    n_bytes = tf.strings.length(graph_decode.valid_utf8(texts), unit="BYTE")
    nats = 0.0 - log_likelihood  # not -ll: an empty text would give -0.0
    return {
        "log_likelihood": log_likelihood,
        "token_counts": counts,
        "perplexity": tf.exp(nats / tf.cast(tf.maximum(counts, 1), tf.float64)),
        "bits_per_byte": nats / math.log(2) / tf.cast(tf.maximum(n_bytes, 1), tf.float64),
    }


def causal_lm(model, tokenizer, default_new_tokens=DEFAULTS["max_new_tokens"], cap=None,
              serving_default="portable"):
    """The signatures of a causal LM.

    ``generate`` decodes in the portable graph (any TF runtime), and
    ``generate_xla`` in an XLA-compiled loop (a server started with
    ``--xla_cpu_compilation_enabled`` or ``--xla_gpu_compilation_enabled``);
    both take the same inputs and give the same outputs, and
    ``serving_default`` is one of them.

    Args:
        model: a causal LM of the zoo (TensorFlow backend).
        tokenizer: its tokenizer layer.
        default_new_tokens: new tokens of the ``greedy`` signature.
        cap: most new tokens per request (see ``new_token_cap``).
        serving_default: ``"portable"`` or ``"xla"``: which of the two
            decoding signatures is ``serving_default``.

    Returns:
        ``{name: tf.function}``.
    """
    check_default(serving_default, "causal_lm")
    cap = new_token_cap(model, cap)
    default_new_tokens = min(int(default_new_tokens), cap)
    prompts_spec = tf.TensorSpec([None], tf.string, name="prompts")

    stop_spec = tf.TensorSpec([None, None], tf.string, name="stop")
    beams_spec = tf.TensorSpec([None], tf.int32, name="num_beams")

    def generate_fn(xla):
        # The export stores the defaults of stop and num_beams (request.DEFAULTS)
        # in the SignatureDef, from which TF Serving fills a left-out input.
        @tf.function(autograph=False, input_signature=[prompts_spec, *_SETTINGS_SPECS.values(), stop_spec, beams_spec])
        def generate(prompts, max_new_tokens, temperature, top_k, top_p, seed, stop, num_beams):
            settings = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
            return _generate(model, tokenizer, prompts, max_new_tokens, settings, cap, xla, stop, num_beams)

        return generate

    generate, generate_xla = generate_fn(False), generate_fn(True)

    @tf.function(autograph=False, input_signature=[prompts_spec])
    def greedy(prompts):
        rows = tf.shape(prompts)[0]
        settings = {
            "temperature": tf.zeros([rows]), "top_k": tf.zeros([rows], tf.int32),
            "top_p": tf.ones([rows]), "seed": tf.zeros([rows], tf.int32),
        }
        return _generate(model, tokenizer, prompts, tf.fill([rows], default_new_tokens), settings, cap)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def score(texts):
        return _score(model, tokenizer, texts)

    endpoints = {
        "serving_default": generate_xla if serving_default == "xla" else generate,
        "generate": generate, "generate_xla": generate_xla, "greedy": greedy, "score": score,
    }
    if chat_template.is_chat(tokenizer):
        # An sft model: messages in, reply out, the template applied in the graph.
        @tf.function(autograph=False, input_signature=[
            prompts_spec, tf.TensorSpec([None, None, 2], tf.string, name="history"), *_SETTINGS_SPECS.values()])
        def chat(prompts, history, max_new_tokens, temperature, top_k, top_p, seed):
            settings = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
            ids = chat_template.conversation_ids(tokenizer, history, prompts)
            return _generate(model, tokenizer, prompts, max_new_tokens, settings, cap, ids=ids)

        endpoints["chat"] = chat
    return endpoints


def check_default(serving_default, kind):
    """Raises ValueError unless ``serving_default`` names a decoding signature ``kind`` has."""
    choices = ("portable", "xla") if kind == "causal_lm" else ("portable",)
    if serving_default not in choices:
        raise ValueError(f"serving_default must be one of {', '.join(choices)} for a {kind} export, "
                         f"got {serving_default!r} (only causal LMs have an XLA signature)")


def xla_signatures(endpoints):
    """The names of ``endpoints`` that run XLA-compiled code (``generate_xla`` and its alias)."""
    return sorted(n for n, fn in endpoints.items() if "generate_xla" in endpoints and fn is endpoints["generate_xla"])


def classify(model, tokenizer, default_new_tokens=None, cap=None, serving_default="portable"):
    """The signatures of a classifier: texts -> label names and probabilities.

    The texts are packed exactly as ``kerazoo.classify`` packs them
    (``tasks.classify.pack``: ``<s> ids </s>``, cut to the model's
    ``max_length``), so the export and in-process predictions agree.

    Args:
        model: a ``Classifier`` (TensorFlow backend).
        tokenizer: its tokenizer layer.
        default_new_tokens: unused (a generation setting).
        cap: unused.

        serving_default: ``"portable"`` (a classifier has no XLA signature).

    Returns:
        ``{"serving_default": fn, "classify": fn}``; ``fn(texts)`` returns
        ``labels`` (string), ``label_ids`` (int32) and ``probabilities``
        (float32, ``(batch, num_labels)`` in ``label_names`` order).
    """
    from kerazoo.training.tasks.classify import pack

    check_default(serving_default, "classify")
    names = tf.constant(list(model.label_names))

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def classify_texts(texts):
        ids = pack(tokenizer, texts, model.max_length)
        probabilities = tf.nn.softmax(tf.cast(model(ids, training=False), tf.float32), axis=-1)
        label_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"labels": tf.gather(names, label_ids), "label_ids": label_ids, "probabilities": probabilities}

    return {"serving_default": classify_texts, "classify": classify_texts}

def _translate(model, tokenizer, texts, max_new_tokens, cap):
    """Graph translation: greedy outputs, their token counts and the source tokens kept.

    The same plan as ``kerazoo.inference.translate``: sources end with the end token
    and keep their first ``max_source_length - 1`` tokens; the encoder runs
    once (``model.start_cache``); the decoder starts from ``<s>`` and runs
    the graph decoding loop of causal LMs with that cache.
    """
    sources = packing.source_ids_tf(tokenizer.tokenize(graph_decode.valid_utf8(texts)), model.max_source_length)
    rows = tf.shape(texts)[0]
    new_tokens = graph_decode.clamp_new_tokens(max_new_tokens, cap)
    start = tf.fill([rows, 1], tf.constant(packing.DECODER_START_ID, tf.int32))
    lengths = tf.ones([rows], tf.int32)
    cache = model.start_cache(sources.to_tensor(PAD_ID), tf.reduce_max(lengths + new_tokens))
    greedy = {"temperature": tf.zeros([rows]), "top_k": tf.zeros([rows], tf.int32),
              "top_p": tf.ones([rows]), "seed": tf.zeros([rows], tf.int32)}
    tokens = graph_decode.decode(model, start, lengths, new_tokens, greedy, cache=cache)
    generated = graph_decode.new_tokens_of(tokens, lengths, new_tokens)
    return {
        "translations": graph_decode.valid_utf8(tokenizer.detokenize(generated)),
        "token_counts": tf.cast(generated.row_lengths(), tf.int32),
        "source_tokens": tf.cast(sources.row_lengths(), tf.int32),
    }


def seq2seq(model, tokenizer, default_new_tokens=DEFAULTS["max_new_tokens"], cap=None, serving_default="portable"):
    """The signatures of a seq2seq model.

    - ``serving_default``: ``texts`` and per-row ``max_new_tokens`` ->
      ``translations``, ``token_counts``, ``source_tokens``
    - ``translate``: ``texts`` only, with the export's default length

    Both decode greedily; ``max_new_tokens`` is clamped into ``[0, cap]``
    (the target context minus the start token at most).

    Args:
        model: a ``seq2seq`` model of the zoo (TensorFlow backend).
        tokenizer: its tokenizer layer.
        default_new_tokens: output tokens of the ``translate`` signature.
        cap: most output tokens per request.
        serving_default: ``"portable"`` (no XLA signature here).

    Returns:
        ``{name: tf.function}``.
    """
    check_default(serving_default, "seq2seq")
    cap = new_token_cap(model, cap)
    default_new_tokens = min(int(default_new_tokens), cap)
    texts_spec = tf.TensorSpec([None], tf.string, name="texts")

    @tf.function(autograph=False, input_signature=[texts_spec, _SETTINGS_SPECS["max_new_tokens"]])
    def serving_default(texts, max_new_tokens):
        return _translate(model, tokenizer, texts, max_new_tokens, cap)

    @tf.function(autograph=False, input_signature=[texts_spec])
    def translate(texts):
        return _translate(model, tokenizer, texts, tf.fill([tf.shape(texts)[0]], default_new_tokens), cap)

    return {"serving_default": serving_default, "translate": translate}


def model_kind(model):
    """The kind of model, which picks its signatures."""
    from kerazoo.decoding.protocol import CachedLM
    from kerazoo.models.classifier import Classifier

    if isinstance(model, Classifier):
        return "classify"
    if hasattr(model, "start_cache") and hasattr(model, "max_source_length"):
        return "seq2seq"
    if isinstance(model, CachedLM):
        return "causal_lm"
    raise ValueError(f"cannot export a {type(model).__name__}: no serving signatures for this kind of model")


BUILDERS = {"causal_lm": causal_lm, "classify": classify, "seq2seq": seq2seq}
