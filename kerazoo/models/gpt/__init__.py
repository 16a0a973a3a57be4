"""The GPT-style decoder: the model (``model``), its block (``block``), the
block's single ``keras.ops`` decoding step (``step``) and the plain-PyTorch
mirror of that step (``step_torch``)."""

from kerazoo.models.gpt.model import GPT, GPTConfig
