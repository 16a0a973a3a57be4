"""Task runners beside the causal-LM path of ``kerazoo.runner``.

``TASK_RUNNERS`` maps a recipe's task kind (``[task] kind``, or the arch's
default) to ``run(recipe, parallel, runs_dir, resume, tokenizer, verbose,
log, callbacks) -> RunResult``. ``causal_lm`` stays in ``kerazoo.runner``.
"""

from kerazoo.tasks import seq2seq

TASK_RUNNERS = {"seq2seq": seq2seq.run}
