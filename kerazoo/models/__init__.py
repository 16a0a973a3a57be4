"""Model builders and the registry of the zoo."""

from kerazoo.models.bert import BERT, BERTConfig
from kerazoo.models.bilstm import BiLSTM, BiLSTMConfig
from kerazoo.models.classifier import Classifier
from kerazoo.models.gpt.model import GPT, GPTConfig
from kerazoo.models.llama.model import Llama, LlamaConfig
from kerazoo.models.registry import ARCHS, build, get_arch, list_archs, make_hparams
from kerazoo.models.rnn import RecurrentConfig, RecurrentLM
from kerazoo.models.seq2seq import Seq2Seq, Seq2SeqConfig

__all__ = [
    "ARCHS",
    "BERT",
    "BERTConfig",
    "BiLSTM",
    "BiLSTMConfig",
    "Classifier",
    "GPT",
    "GPTConfig",
    "Llama",
    "LlamaConfig",
    "RecurrentConfig",
    "RecurrentLM",
    "Seq2Seq",
    "Seq2SeqConfig",
    "build",
    "get_arch",
    "list_archs",
    "make_hparams",
]
