"""An interpolated Kneser–Ney n-gram language model over the shared tokenizer's ids.

    token stream -> counts of every k-gram, k = 1..order (numpy, chunk by chunk)
                 -> Kneser–Ney tables: per k-gram its discounted share ``alpha``,
                    per context its back-off weight ``gamma``
                 -> P(w | h) = alpha_k(h, w) + gamma_k(h) * P_{k-1}(w | h[1:]),  down to
                    P_1(w) = alpha_1(w) + gamma_1 / V (never zero)

The highest order counts how often a k-gram occurs; the lower orders count in
how many distinct contexts it continues (the Kneser–Ney idea: "Francisco" is
frequent but follows only "San", so it is a poor guess after an unseen word).
One absolute discount per order, ``D = n1 / (n1 + 2 n2)`` (Ney et al.).

Why a Keras model holding lookup tables, computed in numpy on the host: the
run folder contract (``model.keras`` with its tokenizer, loaded in safe mode
by ``load_run``, ``count_params``) then holds for the n-gram as for every
other arch, so the leaderboard and scoring treat it alike. The tables are
non-trainable int32/float32 variables (int32 so they survive JAX without x64).
The arithmetic is not ``keras.ops``: Kneser–Ney back-off is a ragged sparse
lookup (each context has its own number of followers) with no gradient, which
numpy's ``searchsorted`` does directly and no dense tensor op expresses.
"""

import dataclasses
import math

import keras
import numpy as np

from kerazoo.models.hparams import field
from kerazoo.models.tokenizer_holder import TokenizerHolder

# Ids of a k-gram are packed into one int64 key, base vocab_size; keys must fit in 62 bits.
KEY_BITS = 62
# Tokens counted per numpy pass: bounds the temporary key arrays, not the counts.
COUNT_CHUNK = 1 << 22


@dataclasses.dataclass
class NGramConfig:
    """Hyper-parameters of an n-gram model."""

    order: int = field(3, "n: tokens per n-gram (the context is n - 1 tokens)")

    def validate(self):
        """Raises ValueError on impossible values."""
        if not isinstance(self.order, int) or self.order < 1:
            raise ValueError(f"hyper-parameter 'order' must be a positive int, got {self.order!r}")

    @property
    def max_length(self):
        """An n-gram scores any length of text."""
        return None


def check_order(order, vocab_size):
    """Raises ValueError when ``order`` ids of ``vocab_size`` do not fit in one int64 key."""
    if order * math.log2(max(vocab_size, 2)) > KEY_BITS:
        top = max(1, int(KEY_BITS // math.log2(max(vocab_size, 2))))
        raise ValueError(f"model.order={order} is too large for a vocabulary of {vocab_size} tokens "
                         f"(n-gram keys are 64-bit); use order <= {top}")


def _keys(ids, k, vocab_size):
    """The int64 keys of every k-gram of ``ids`` (base ``vocab_size``)."""
    n = len(ids) - k + 1
    if n <= 0:
        return np.zeros((0,), np.int64)
    key = np.zeros((n,), np.int64)
    for i in range(k):
        key = key * vocab_size + ids[i:i + n].astype(np.int64)
    return key


def _merge(keys, counts):
    """Sums counts of equal keys: ``(unique sorted keys, summed counts)``."""
    if not len(keys):
        return keys, counts
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(counts, starts)


def count_ngrams(ids, order, vocab_size, chunk=COUNT_CHUNK):
    """Counts every k-gram (k = 1..order) of a token stream.

    The stream is read in chunks that overlap by ``order - 1`` tokens, so no
    k-gram is lost or counted twice; memory is the counts plus one chunk's keys.

    Args:
        ids: 1-D int array (the token stream, documents opened by ``</s>``).
        order: the largest k.
        vocab_size: ids are below this.
        chunk: tokens per pass.

    Returns:
        A list, index k - 1: ``(sorted unique int64 keys, int64 counts)``.
    """
    ids = np.asarray(ids)
    tables = []
    for k in range(1, order + 1):
        keys, counts = np.zeros((0,), np.int64), np.zeros((0,), np.int64)
        for start in range(0, max(len(ids) - k + 1, 0), chunk):
            part, n = np.unique(_keys(ids[start:start + chunk + k - 1], k, vocab_size), return_counts=True)
            keys, counts = _merge(np.concatenate([keys, part]), np.concatenate([counts, n.astype(np.int64)]))
        tables.append((keys, counts))
    return tables


def _discount(counts):
    """Ney's absolute discount ``n1 / (n1 + 2 n2)`` (0.5 when the counts say nothing)."""
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    return n1 / (n1 + 2 * n2) if n1 + n2 else 0.5


def kneser_ney_tables(counts, vocab_size):
    """Interpolated Kneser–Ney tables from raw k-gram counts.

    Args:
        counts: ``count_ngrams`` output.
        vocab_size: the vocabulary size.

    Returns:
        ``(unigram, tables)``: the dense ``P_1`` (float64, sums to 1) and, per
        order k >= 2, ``(gram_keys, alpha, context_keys, gamma)``.
    """
    order = len(counts)
    unigram = np.full((vocab_size,), 1.0 / vocab_size)
    tables = []
    for k in range(1, order + 1):
        keys, c = counts[k - 1]
        if k < order:  # continuation counts: distinct left extensions of each k-gram
            suffix = counts[k][0] % (vocab_size ** k)
            keys, c = np.unique(suffix, return_counts=True)
        if not len(keys):
            if k > 1:
                tables.append((keys, np.zeros((0,)), keys, np.zeros((0,))))
            continue
        d = _discount(c)
        if k == 1:
            total = c.sum()
            unigram = np.full((vocab_size,), d * len(keys) / total / vocab_size)
            unigram[keys] += np.maximum(c - d, 0) / total
            continue
        contexts = keys // vocab_size
        starts = np.flatnonzero(np.r_[True, contexts[1:] != contexts[:-1]])
        context_total = np.add.reduceat(c, starts).astype(np.float64)
        followers = np.diff(np.r_[starts, len(keys)])
        alpha = np.maximum(c - d, 0) / np.repeat(context_total, followers)
        tables.append((keys, alpha, contexts[starts], d * followers / context_total))
    return unigram, tables


def _ids_of(keys, k, vocab_size):
    """Unpacks int64 keys into an int32 ``(n, k)`` id table (what the model saves)."""
    out = np.zeros((len(keys), k), np.int32)
    for i in range(k - 1, -1, -1):
        out[:, i] = keys % vocab_size
        keys = keys // vocab_size
    return out


def _keys_of(table, vocab_size):
    """Packs an ``(n, k)`` id table back into int64 keys."""
    key = np.zeros((table.shape[0],), np.int64)
    for i in range(table.shape[1]):
        key = key * vocab_size + table[:, i].astype(np.int64)
    return key


@keras.saving.register_keras_serializable(package="kerazoo")
class NGramLM(TokenizerHolder, keras.Model):
    """An interpolated Kneser–Ney n-gram model whose tables save in a ``.keras`` file.

    Args:
        vocab_size: number of token ids.
        order: n (tokens per n-gram).
        sizes: ``[[k-grams, contexts], ...]`` for k = 2..order: the table
            shapes (set by ``fit_counts``; empty tables when omitted).
        tokenizer: optional tokenizer layer, saved with the model.
        name: model name.

    Called on int ids ``(batch, length)`` it returns log-probabilities
    ``(batch, length, vocab_size)`` of each next token given the window so
    far: logits, so the zoo's metrics score it like any causal LM.

    Example:
        >>> model = NGramLM(vocab_size=261, order=3)
        >>> model.fit_counts(ids)
    """

    def __init__(self, vocab_size, order=3, sizes=None, tokenizer=None, name=None, **kwargs):
        super().__init__(name=name or "ngram", **kwargs)
        NGramConfig(order).validate()
        check_order(order, vocab_size)
        self.vocab_size, self.order = int(vocab_size), int(order)
        self.sizes = [list(map(int, s)) for s in (sizes or [[0, 0]] * (order - 1))]
        if len(self.sizes) != order - 1:
            raise ValueError(f"sizes lists {len(self.sizes)} tables; order {order} has {order - 1}")
        self.tokenizer = tokenizer
        self.unigram = self.add_weight(shape=(vocab_size,), initializer=keras.initializers.Constant(1.0 / vocab_size),
                                       trainable=False, name="unigram")
        self.grams, self.alphas, self.contexts, self.gammas = [], [], [], []
        for k, (n_grams, n_contexts) in enumerate(self.sizes, start=2):
            self.grams.append(self.add_weight(shape=(n_grams, k), dtype="int32", initializer="zeros",
                                              trainable=False, name=f"grams_{k}"))
            self.alphas.append(self.add_weight(shape=(n_grams,), initializer="zeros", trainable=False,
                                               name=f"alpha_{k}"))
            self.contexts.append(self.add_weight(shape=(n_contexts, k - 1), dtype="int32", initializer="zeros",
                                                 trainable=False, name=f"contexts_{k}"))
            self.gammas.append(self.add_weight(shape=(n_contexts,), initializer="zeros", trainable=False,
                                               name=f"gamma_{k}"))
        self.built = True
        self._host = None  # numpy copies of the tables with int64 keys, made on first use

    # Counted, not fitted: kz.generate samples it with ``sample_spec``, not a decoding loop.
    counted = True

    @property
    def max_length(self):
        """No context limit: any window length is scored."""
        return None

    def get_config(self):
        return {"name": self.name, "vocab_size": self.vocab_size, "order": self.order, "sizes": self.sizes,
                "tokenizer": self._tokenizer_config()}

    @classmethod
    def from_counts(cls, ids, vocab_size, order=3, tokenizer=None):
        """Counts a token stream and returns the fitted model.

        Args:
            ids: 1-D int array, the training token stream.
            vocab_size: number of token ids.
            order: n.
            tokenizer: the tokenizer layer the ids came from.

        Returns:
            A ``NGramLM`` holding the Kneser–Ney tables of ``ids``.
        """
        check_order(order, vocab_size)
        unigram, tables = kneser_ney_tables(count_ngrams(ids, order, vocab_size), vocab_size)
        sizes = [[len(t[0]), len(t[2])] for t in tables]
        model = cls(vocab_size, order, sizes, tokenizer)
        model.unigram.assign(unigram.astype(np.float32))
        for k, (keys, alpha, ctx, gamma) in enumerate(tables, start=2):
            model.grams[k - 2].assign(_ids_of(keys, k, vocab_size))
            model.alphas[k - 2].assign(alpha.astype(np.float32))
            model.contexts[k - 2].assign(_ids_of(ctx, k - 1, vocab_size))
            model.gammas[k - 2].assign(gamma.astype(np.float32))
        return model

    def count_params(self):
        """Numbers stored in the tables (every id, probability and weight)."""
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    def _tables(self):
        if self._host is None:
            v, host = self.vocab_size, []
            for g, a, c, m in zip(self.grams, self.alphas, self.contexts, self.gammas):
                host.append((_keys_of(keras.ops.convert_to_numpy(g), v), keras.ops.convert_to_numpy(a).astype(np.float64),
                             _keys_of(keras.ops.convert_to_numpy(c), v), keras.ops.convert_to_numpy(m).astype(np.float64)))
            self._host = (keras.ops.convert_to_numpy(self.unigram).astype(np.float64), host)
        return self._host

    def distributions(self, contexts, lengths=None):
        """Next-token probabilities after each context.

        Args:
            contexts: int ``(n, order - 1)``, the last tokens before each
                prediction, most recent last.
            lengths: int ``(n,)``, how many of those tokens exist (the rest,
                on the left, are before the text); default all.

        Returns:
            float64 ``(n, vocab_size)``, each row summing to 1.
        """
        v = self.vocab_size
        contexts = np.asarray(contexts, np.int64).reshape(-1, self.order - 1)
        n = contexts.shape[0]
        lengths = np.full((n,), self.order - 1) if lengths is None else np.asarray(lengths)
        unigram, tables = self._tables()
        probs = np.tile(unigram, (n, 1))
        for k, (keys, alpha, ctx_keys, gamma) in enumerate(tables, start=2):
            h = np.zeros((n,), np.int64)
            for i in range(self.order - k + 1, self.order):  # the last k - 1 context tokens
                h = h * v + contexts[:, i - 1]
            slot = np.searchsorted(ctx_keys, h)
            found = (slot < len(ctx_keys)) & (lengths >= k - 1)
            found[found] = ctx_keys[slot[found]] == h[found]
            rows = np.flatnonzero(found)
            if not len(rows):
                continue
            probs[rows] *= gamma[slot[rows]][:, None]
            lo = np.searchsorted(keys, h[rows] * v)
            hi = np.searchsorted(keys, h[rows] * v + v)
            count = hi - lo
            row_of = np.repeat(rows, count)
            entry = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + np.repeat(lo, count)
            probs[row_of, keys[entry] % v] += alpha[entry]
        return probs

    def log_probs(self, x):
        """``log P(next | window so far)`` at every position of int ids ``(batch, length)``."""
        x = np.asarray(x, np.int64)
        b, t = x.shape
        width = self.order - 1
        padded = np.concatenate([np.zeros((b, width), np.int64), x], axis=1)
        ctx = np.stack([padded[:, i + 1:i + 1 + t] for i in range(width)], axis=-1) if width else np.zeros((b, t, 0))
        lengths = np.minimum(np.arange(1, t + 1), width)
        probs = self.distributions(ctx.reshape(b * t, width), np.tile(lengths, b))
        return np.log(probs).reshape(b, t, self.vocab_size).astype(np.float32)

    def call(self, x):
        return keras.ops.convert_to_tensor(self.log_probs(keras.ops.convert_to_numpy(x)))

    def predict_on_batch(self, x):
        return self.log_probs(x)

    def sample(self, prompt_ids, max_new_tokens, temperature=1.0, seed=None, stop_ids=()):
        """Samples a continuation of one prompt.

        Args:
            prompt_ids: 1-D ints, the prompt (starting with ``</s>`` as documents do).
            max_new_tokens: tokens to draw.
            temperature: 0 for greedy; otherwise probabilities are raised to ``1 / temperature``.
            seed: numpy seed.
            stop_ids: ids that end the sample (not included).

        Returns:
            A list of the new ids.
        """
        rng = np.random.default_rng(seed)
        ids, width, out = list(map(int, prompt_ids)), self.order - 1, []
        for _ in range(max_new_tokens):
            ctx = ([0] * width + ids)[len(ids):] if width else []
            p = self.distributions(np.asarray([ctx]), np.asarray([min(len(ids), width)]))[0]
            if temperature and temperature > 0:
                p = np.exp(np.log(p) / temperature)
                nxt = int(rng.choice(len(p), p=p / p.sum()))
            else:
                nxt = int(np.argmax(p))
            if nxt in stop_ids:
                break
            ids.append(nxt)
            out.append(nxt)
        return out

    def sample_spec(self, prompt_ids, max_new_tokens, spec, seed=None):
        """``sample`` under a ``kz.generate`` sampler spec: greedy or temperature.

        Raises:
            ValueError: a sampler the n-gram does not implement (top-k, top-p, beam).
        """
        if spec.kind not in ("greedy", "temperature"):
            raise ValueError(f"the ngram model samples greedy or with a temperature; not '{spec.kind}'")
        return self.sample(prompt_ids, max_new_tokens, spec.temperature if spec.kind == "temperature" else 0, seed)
