"""The zoo's registry: every architecture, its builder and its hyper-parameters."""

import dataclasses

from kerazoo.models.bert import BERT, BERTConfig
from kerazoo.models.bilstm import BiLSTM, BiLSTMConfig
from kerazoo.models.gpt.model import GPT, GPTConfig
from kerazoo.models.hparams import describe, make_config
from kerazoo.models.llama.model import Llama, LlamaConfig
from kerazoo.models.ngram import NGramConfig, NGramLM
from kerazoo.models.rnn import RecurrentConfig, RecurrentLM
from kerazoo.models.seq2seq import Seq2Seq, Seq2SeqConfig


@dataclasses.dataclass(frozen=True)
class Arch:
    """One registry entry.

    Attributes:
        name: the arch name used in recipes and ``build``.
        summary: one line for ``kerazoo models``.
        config_cls: the hyper-parameter dataclass.
        builder: ``builder(vocab_size, config, tokenizer) -> keras.Model``.
        causal: whether it is a next-token (causal) language model.
        task: the task a recipe trains it for when ``[task] kind`` is unset
            (``causal_lm``, ``masked_lm``, ``classify``, ``seq2seq``).
        encoder: whether classifier heads can pool its ``encode`` features.
        model_cls: the model class it builds (None when shared, as RNNs).
    """

    name: str
    summary: str
    config_cls: type
    builder: object
    causal: bool = True
    task: str = "causal_lm"
    encoder: bool = False
    model_cls: object = None


def _recurrent_builder(cell):
    def build(vocab_size, config, tokenizer):
        return RecurrentLM(vocab_size=vocab_size, cell=cell, tokenizer=tokenizer, **dataclasses.asdict(config))

    return build


def _bert_builder(vocab_size, config, tokenizer):
    return BERT(vocab_size=vocab_size, tokenizer=tokenizer, **dataclasses.asdict(config))


def _bilstm_builder(vocab_size, config, tokenizer):
    return BiLSTM(vocab_size=vocab_size, tokenizer=tokenizer, **dataclasses.asdict(config))


def _gpt_builder(vocab_size, config, tokenizer):
    return GPT(vocab_size=vocab_size, tokenizer=tokenizer, **dataclasses.asdict(config))


def _llama_builder(vocab_size, config, tokenizer):
    return Llama(vocab_size=vocab_size, tokenizer=tokenizer, **dataclasses.asdict(config))


def _ngram_builder(vocab_size, config, tokenizer):
    return NGramLM(vocab_size=vocab_size, tokenizer=tokenizer, **dataclasses.asdict(config))


def _seq2seq_builder(vocab_size, config, tokenizer):
    return Seq2Seq(vocab_size=vocab_size, tokenizer=tokenizer, **dataclasses.asdict(config))


ARCHS = {
    "rnn": Arch("rnn", "Sequential: Embedding -> SimpleRNN x N -> Dense", RecurrentConfig, _recurrent_builder("rnn"),
                encoder=True),
    "gru": Arch("gru", "Sequential: Embedding -> GRU x N -> Dense", RecurrentConfig, _recurrent_builder("gru"),
                encoder=True),
    "lstm": Arch("lstm", "Sequential: Embedding -> LSTM x N -> Dense", RecurrentConfig, _recurrent_builder("lstm"),
                 encoder=True),
    "gpt": Arch("gpt", "functional: token+position embedding -> pre-norm Transformer decoder x N -> tied head", GPTConfig, _gpt_builder,
                model_cls=GPT),
    "llama": Arch("llama", "functional: token embedding -> RMSNorm, RoPE grouped-query attention, SwiGLU MLP x N -> head",
                  LlamaConfig, _llama_builder, model_cls=Llama),
    "bert": Arch("bert", "functional: token+position+segment embedding -> post-norm Transformer encoder x N -> masked-LM head",
                 BERTConfig, _bert_builder, causal=False, task="masked_lm", encoder=True, model_cls=BERT),
    "bilstm": Arch("bilstm", "functional: Embedding -> Bidirectional(LSTM) x N -> per-token head (pooled by classifiers)",
                   BiLSTMConfig, _bilstm_builder, causal=False, task="classify", encoder=True, model_cls=BiLSTM),
    "seq2seq": Arch(
        "seq2seq", "functional: Transformer encoder x N -> decoder x N with cross-attention -> tied head",
        Seq2SeqConfig, _seq2seq_builder, causal=False, task="seq2seq", model_cls=Seq2Seq,
    ),
    "ngram": Arch("ngram", "interpolated Kneser-Ney n-gram counts (lookup tables, no gradient): the leaderboard's floor",
                  NGramConfig, _ngram_builder, task="ngram", model_cls=NGramLM),
}


def get_arch(name):
    """Looks an architecture up by name.

    Args:
        name: arch name, e.g. ``"gpt"``.

    Returns:
        The ``Arch`` entry.

    Raises:
        ValueError: naming the unknown arch and listing the valid ones.
    """
    if name not in ARCHS:
        raise ValueError(f"unknown arch '{name}'; valid archs: {', '.join(ARCHS)}")
    return ARCHS[name]


def make_hparams(arch, **hparams):
    """Validates hyper-parameters for an arch.

    Args:
        arch: arch name.
        **hparams: hyper-parameters; missing ones take their defaults.

    Returns:
        The arch's config dataclass instance.
    """
    return make_config(get_arch(arch).config_cls, arch, hparams)


def build(arch, vocab_size=None, tokenizer=None, **hparams):
    """Builds a model of the zoo.

    Args:
        arch: one of ``ARCHS`` (``rnn``, ``gru``, ``lstm``, ``gpt``, ``llama``, ``bert``, ``bilstm``, ``seq2seq``).
        vocab_size: number of token ids. Taken from ``tokenizer`` if omitted.
        tokenizer: a kerazoo tokenizer layer; the model keeps it and saves it
            inside its ``.keras`` file.
        **hparams: the arch's hyper-parameters (see ``kerazoo models``).

    Returns:
        A built ``keras.Model`` mapping int token ids ``(batch, length)`` to
        logits ``(batch, length, vocab_size)`` (``seq2seq``: a dict of
        ``encoder_token_ids`` and ``decoder_token_ids`` to decoder logits).

    Raises:
        ValueError: unknown arch, unknown or ill-typed hyper-parameter,
            impossible value, or no way to know the vocabulary size.

    Example:
        >>> model = kerazoo.models.build("gpt", vocab_size=1000, num_layers=2)
    """
    entry = get_arch(arch)
    config = make_config(entry.config_cls, arch, hparams)
    if vocab_size is None:
        if tokenizer is None:
            raise ValueError("build() needs vocab_size or tokenizer")
        vocab_size = int(tokenizer.vocabulary_size())
    if tokenizer is not None and vocab_size != int(tokenizer.vocabulary_size()):
        raise ValueError(
            f"vocab_size={vocab_size} does not match the tokenizer's vocabulary "
            f"size {tokenizer.vocabulary_size()}"
        )
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size <= 0:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    return entry.builder(vocab_size, config, tokenizer)


def list_archs():
    """Describes the zoo.

    Returns:
        A list of ``(arch name, summary, [(hparam, type, default, help), ...])``.
    """
    return [(a.name, a.summary, describe(a.config_cls)) for a in ARCHS.values()]
