"""The training tasks, plug-ins of the one run lifecycle, by ``[task] kind``.

Each is a ``kerazoo.training.tasks.base.Task``: it prepares its data, builds
and compiles its model, evaluates it, names its extra run-folder files and
prints its result; ``kerazoo.training.lifecycle.run_task`` does the rest.
"""

from kerazoo.training.tasks.causal_lm import CausalLM
from kerazoo.training.tasks.classify import Classify
from kerazoo.training.tasks.masked_lm import MaskedLM
from kerazoo.training.tasks.ngram import NGramTask
from kerazoo.training.tasks.seq2seq import Seq2SeqTask
from kerazoo.training.tasks.sft import SFT

TASKS = {task.kind: task for task in (CausalLM(), MaskedLM(), Classify(), Seq2SeqTask(), NGramTask(), SFT())}


def get_task(kind):
    """The task plug-in of a ``[task] kind``.

    Args:
        kind: ``causal_lm``, ``masked_lm``, ``classify`` or ``seq2seq``.

    Returns:
        The ``Task``.

    Raises:
        ValueError: no task of that kind.
    """
    if kind not in TASKS:
        raise ValueError(f"task '{kind}' has no runner yet; available: {', '.join(TASKS)}")
    return TASKS[kind]
