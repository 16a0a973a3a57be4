"""The llama-style decoder: the model (``model``), its block (``block``) and the
block's single ``keras.ops`` step, rotary positions and RMSNorm (``step``)."""

from kerazoo.models.llama.model import Llama, LlamaConfig
