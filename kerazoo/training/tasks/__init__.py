"""Training tasks other than next-token prediction, dispatched by ``[task] kind``.

``runner._run`` trains causal LMs itself and hands every other kind to
``TASK_RUNNERS[kind](recipe, parallel, runs_dir, resume, tokenizer, verbose,
log, callbacks)``, which returns a ``runner.RunResult``.
"""

from kerazoo.training.tasks import classify as classify_task
from kerazoo.training.tasks import masked_lm as masked_lm_task
from kerazoo.training.tasks import seq2seq as seq2seq_task

TASK_RUNNERS = {
    "masked_lm": masked_lm_task.run,
    "classify": classify_task.run,
    "seq2seq": seq2seq_task.run,
}
