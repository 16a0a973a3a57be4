"""The recipe schema: one frozen dataclass per TOML section, each field commented.

``kerazoo.training.recipes`` parses and validates TOML into these. A
``Recipe`` is plain data: two recipes compare equal when they train the same
run (``runner`` refuses to resume with a different one).
"""

import dataclasses
import re
import typing
from typing import Optional

from kerazoo.models import get_arch

# What a run name (and so a run folder) may be called. ``\Z``, not ``$``: ``$``
# also matches before a final newline. At most 200 characters, so that
# ``.<name>.partial`` and ``<name>-N`` stay within a file name's 255 bytes.
NAME_MAX = 200
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}\Z" % (NAME_MAX - 1))

class RecipeError(ValueError):
    """A recipe is invalid; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class DataSection:
    """Where the text comes from."""

    source: str = "builtin:pydocs"  # builtin:pydocs, a file, a folder, a glob, .jsonl, .csv/.tsv
    column: str = "text"  # text field of JSONL / CSV / TSV sources
    val_fraction: float = 0.1  # share held out for validation
    split: str = "auto"  # auto | shuffle (whole documents) | tail (last part of the text)
    boundary: str = "file"  # plain text documents: file (one per file) | blank_line (blank lines separate) | line
    seed: int = 0  # seed of the shuffled split
    label_column: str = "label"  # classify: the label field of JSONL / CSV / TSV sources
    val_source: str = ""  # a separate validation file; empty: split data.source
    val_column: str = ""  # text field of data.val_source when it differs from data.column
    source_column: str = "source"  # seq2seq: the source-text column / JSON field
    target_column: str = "target"  # seq2seq: the target-text column / JSON field
    header: bool = True  # CSV/TSV starts with a header row; false: columns are named "1", "2", ... by position


@dataclasses.dataclass(frozen=True)
class TokenizerSection:
    """The shared tokenizer: trained on the train split, or loaded."""

    kind: str = "unigram"  # byte | char | wordpiece | unigram | bpe
    vocab_size: Optional[int] = None  # unset: byte 261, char every character, others 2048
    lowercase: bool = False  # lowercase before tokenizing (wordpiece / sentencepiece)
    path: str = ""  # load this saved tokenizer (a tokenizer folder or a run folder) instead of training
    sample_bytes: int = 20_000_000  # train it on a seeded sample of this many bytes of the train split (0: all)


# The vocabulary size of the trained kinds when a recipe leaves it out.
DEFAULT_VOCAB_SIZE = 2048


def vocab_size_for(section):
    """The vocabulary size to train with: the recipe's, or the kind's default."""
    if section.vocab_size is not None or section.kind in ("byte", "char"):
        return section.vocab_size
    return DEFAULT_VOCAB_SIZE


@dataclasses.dataclass(frozen=True)
class TrainSection:
    """``model.fit`` settings. One Keras epoch is ``eval_every`` steps."""

    seq_len: int = 128  # tokens per training window
    batch_size: int = 32  # windows per step
    windows: str = "packed"  # packed: non-overlapping, reshuffled each pass | random: random offsets (nanoGPT)
    steps: int = 1000  # optimizer steps in all
    eval_every: int = 200  # steps between validation checks and checkpoints
    eval_batches: int = 20  # validation batches per check (0: the whole split)
    eval_tokens: int = 2_000_000  # validation tokens scored at the end, at most (classify, seq2seq: whole rows; 0: all)
    learning_rate: float = 1e-3  # peak learning rate
    warmup_steps: int = 100  # linear warm-up steps, then cosine decay
    min_lr_ratio: float = 0.1  # final learning rate as a share of the peak
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    clipnorm: float = 1.0  # gradient norm clip (0: off)
    clip_global: bool = False  # clip the norm of all gradients together (nanoGPT, torch's clip_grad_norm_), not each weight's
    early_stopping_patience: int = 0  # validation checks without improvement before stopping (0: off)
    tensorboard: bool = False  # write TensorBoard logs into the run folder
    seed: int = 0  # seed of initialisation, dropout and shuffling
    sample_prompt: str = ""  # prompt of the sample printed after training
    sample_tokens: int = 64  # tokens in that sample
    sample_temperature: float = 0.8  # its temperature (0: greedy)
    precision: str = "float32"  # float32 | mixed_bfloat16 | mixed_float16 (a Keras dtype policy)
    jit_compile: typing.Union[bool, str] = "auto"  # XLA train step: true | false | "auto" (see optim.jit_compile_for)
    lora_rank: int = 0  # LoRA adapters of this rank on train.lora_targets, the rest frozen (0: train every weight)
    lora_alpha: float = 0.0  # LoRA scale numerator: updates are (lora_alpha / lora_rank) A B (0: lora_rank)
    lora_targets: str = "query,value"  # LoRA: comma-separated name patterns of the Dense/EinsumDense layers to adapt


# The Keras dtype policies a recipe may train under.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class DistributeSection:
    """Data-parallel training: each device takes a share of every global batch.

    ``train.batch_size`` stays the global batch, so a recipe trains the same
    model on one device or many. Hosts come from the environment
    (``TF_CONFIG`` on TensorFlow, ``KERAS_DISTRIBUTION_*`` on JAX).
    """

    strategy: str = "none"  # none | data_parallel
    devices: int = 0  # devices per process to use (0: all visible); data_parallel only


STRATEGIES = ("none", "data_parallel")

# What a recipe can train a model for. An empty [task] kind means the arch's
# default (registry ``Arch.task``): next-token archs causal_lm, bert masked_lm,
# bilstm classify, seq2seq seq2seq, ngram ngram (counted, not fitted).
TASKS = ("causal_lm", "masked_lm", "classify", "seq2seq", "ngram", "sft")


@dataclasses.dataclass(frozen=True)
class TaskSection:
    """The training task and its settings."""

    kind: str = ""  # causal_lm | masked_lm | classify | seq2seq | ngram | sft; empty: the arch's default
    pooling: str = ""  # classify: cls | mean | last; empty: cls for bert, mean otherwise
    classifier_dropout: float = 0.1  # classify: dropout before the output layer
    mask_rate: float = 0.15  # masked_lm: share of tokens selected (of those: 80% <mask>, 10% random, 10% kept)
    prompt_format: str = "{}"  # sft: the instruction around each prompt, {} standing for it ("Translate to French: {}")


def tasks_of(arch):
    """The tasks an arch can be trained for, its default first."""
    out = [arch.task]
    if arch.causal and arch.task == "causal_lm":
        out.append("sft")  # instruction tuning of any next-token arch
    if arch.encoder and not arch.causal:
        out.append("masked_lm")
    if arch.encoder:
        out.append("classify")
    return tuple(dict.fromkeys(out))


@dataclasses.dataclass
class Recipe:
    """A validated recipe."""

    name: str
    data: DataSection
    tokenizer: TokenizerSection
    model: dict  # {"arch": ..., **hyper-parameters}
    train: TrainSection
    path: str = ""  # the file it came from
    distribute: DistributeSection = dataclasses.field(default_factory=DistributeSection)
    task: TaskSection = dataclasses.field(default_factory=TaskSection)

    @property
    def arch(self):
        return self.model["arch"]

    @property
    def init_from(self):
        """The run folder whose model initialises this one ("" when none)."""
        return self.model.get("init_from", "")

    @property
    def hparams(self):
        return {k: v for k, v in self.model.items() if k not in ("arch", "init_from")}

    @property
    def task_kind(self):
        """The task to train for: ``[task] kind``, or the arch's default."""
        return self.task.kind or get_arch(self.arch).task

    def to_dict(self):
        """The resolved recipe as plain TOML-ready data (defaults filled in)."""
        out = {"name": self.name}
        out["data"] = dataclasses.asdict(self.data)
        out["tokenizer"] = {k: v for k, v in dataclasses.asdict(self.tokenizer).items() if v is not None}
        out["model"] = dict(self.model)
        out["train"] = dataclasses.asdict(self.train)
        out["distribute"] = dataclasses.asdict(self.distribute)
        out["task"] = dataclasses.asdict(self.task)
        return out


SECTIONS = {"data": DataSection, "tokenizer": TokenizerSection, "train": TrainSection, "distribute": DistributeSection,
            "task": TaskSection}
