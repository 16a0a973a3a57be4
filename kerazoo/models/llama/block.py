"""``LlamaBlock``: the llama decoder block, a Keras layer of standard Keras layers.

    x -> x + o(attention(rope(q(RMSNorm(x))), rope(k(...)), v(...)))   grouped-query, causal
      -> x + down(silu(gate(RMSNorm(x))) * up(RMSNorm(x)))             SwiGLU

The projections are ``EinsumDense`` (query, key, value, output: heads as
their own kernel axis) and ``Dense`` (the MLP), so Keras' ``enable_lora``
and ``quantize`` apply to them as to any Keras layer, and the norms are
Keras' ``RMSNormalization``. Training calls the layers (dropout,
autocasting, LoRA) and attends through ``ops.dot_product_attention(...,
is_causal=True)``, which takes ``num_kv_heads`` key/value heads as they
are (fused causal kernels, no repeated keys); decoding reads the same
weights in ``step.block_step``.
"""

import keras
from keras import ops

from kerazoo.models.llama import step as llama_step


@keras.saving.register_keras_serializable(package="kerazoo")
class LlamaBlock(keras.layers.Layer):
    """One pre-norm llama decoder block (RMSNorm, RoPE, grouped-query attention, SwiGLU).

    Args:
        hidden_dim: model width.
        num_heads: query heads.
        num_kv_heads: key/value heads (divides ``num_heads``).
        head_dim: width of a head.
        intermediate_dim: the SwiGLU MLP's width.
        rope_theta: base of the rotary frequencies.
        rms_norm_epsilon: RMSNorm epsilon.
        qkv_bias: biases on the query, key and value projections (Qwen2).
        dropout: dropout on the attention and MLP outputs (before the residual).
        kernel_initializer: initializer of every projection.

    Call it on ``(batch, t, hidden_dim)``; it returns the same shape, position
    ``i`` attending to positions ``<= i``.
    """

    def __init__(self, hidden_dim, num_heads, num_kv_heads, head_dim, intermediate_dim, rope_theta=10000.0,
                 rms_norm_epsilon=1e-6, qkv_bias=False, dropout=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim, self.num_heads, self.num_kv_heads = hidden_dim, num_heads, num_kv_heads
        self.head_dim, self.intermediate_dim = head_dim, intermediate_dim
        self.rope_theta, self.rms_norm_epsilon = rope_theta, rms_norm_epsilon
        self.qkv_bias, self.dropout = qkv_bias, dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        def init():
            return keras.initializers.get(keras.initializers.serialize(self.kernel_initializer))

        def heads_dense(heads, name):
            return keras.layers.EinsumDense("btd,dhk->bthk", output_shape=(None, heads, head_dim),
                                            bias_axes="hk" if qkv_bias else None,
                                            kernel_initializer=init(), dtype=self.dtype_policy, name=name)

        self.attention_norm = keras.layers.RMSNormalization(epsilon=rms_norm_epsilon, dtype=self.dtype_policy,
                                                            name="attention_norm")
        self.query_dense = heads_dense(num_heads, "query")
        self.key_dense = heads_dense(num_kv_heads, "key")
        self.value_dense = heads_dense(num_kv_heads, "value")
        self.output_dense = keras.layers.EinsumDense("bthk,hkd->btd", output_shape=(None, hidden_dim),
                                                     kernel_initializer=init(), dtype=self.dtype_policy,
                                                     name="attention_output")
        self.mlp_norm = keras.layers.RMSNormalization(epsilon=rms_norm_epsilon, dtype=self.dtype_policy,
                                                      name="mlp_norm")
        self.gate_dense, self.up_dense, self.down_dense = (
            keras.layers.Dense(width, use_bias=False, kernel_initializer=init(), dtype=self.dtype_policy, name=name)
            for width, name in ((intermediate_dim, "gate"), (intermediate_dim, "up"), (hidden_dim, "down")))
        self.attention_dropout = keras.layers.Dropout(dropout, name="attention_dropout")
        self.mlp_dropout = keras.layers.Dropout(dropout, name="mlp_dropout")

    def build(self, input_shape):
        hidden = (None, None, self.hidden_dim)
        for layer in (self.attention_norm, self.query_dense, self.key_dense, self.value_dense, self.mlp_norm,
                      self.gate_dense, self.up_dense):
            layer.build(hidden)
        self.output_dense.build((None, None, self.num_heads, self.head_dim))
        self.down_dense.build((None, None, self.intermediate_dim))
        self.built = True

    def call(self, x, training=None):
        h = self.attention_norm(x)
        cos, sin = llama_step.rope_tables(ops.arange(ops.shape(x)[1]), self.head_dim, self.rope_theta)
        query = llama_step.rotate(self.query_dense(h), cos[:, None], sin[:, None])
        key = llama_step.rotate(self.key_dense(h), cos[:, None], sin[:, None])
        value = self.value_dense(h)
        if self.num_kv_heads == 1 < self.num_heads:
            # Keras' TensorFlow dot_product_attention fails on a single
            # key/value head (multi-query attention): repeat it instead.
            key, value = (ops.repeat(y, self.num_heads, axis=2) for y in (key, value))
        out = ops.dot_product_attention(query, key, value, is_causal=True)
        x = x + self.attention_dropout(self.output_dense(out), training=training)
        h = self.mlp_norm(x)
        h = self.down_dense(ops.silu(self.gate_dense(h)) * self.up_dense(h))
        return x + self.mlp_dropout(h, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim, "num_heads": self.num_heads, "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "intermediate_dim": self.intermediate_dim, "rope_theta": self.rope_theta,
            "rms_norm_epsilon": self.rms_norm_epsilon, "qkv_bias": self.qkv_bias, "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
