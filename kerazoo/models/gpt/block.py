"""A keras_hub ``TransformerDecoder`` whose training pass uses fused causal attention.

keras_hub's decoder always builds an explicit ``(batch, t, t)`` causal mask
and hands it to attention, so ``ops.dot_product_attention`` runs with a mask
tensor: PyTorch's ``scaled_dot_product_attention`` then cannot use its
causal flash kernel, and every backend materialises and reads the mask.
Keras' ``MultiHeadAttention._compute_attention(use_causal_mask=True)`` with
no mask calls ``dot_product_attention(is_causal=True)`` instead (and, where
attention dropout rules the fused kernel out, builds the same causal mask
itself). ``CausalDecoder`` takes that path whenever causality is the only
mask: no padding or attention mask, no Keras mask, no cache, no encoder.
Every other call, and every weight, is keras_hub's, so checkpoints, the
HF import and the decoding code (which reads the sub-layers' weights) are
unchanged.

The block's arithmetic for decoding is written once, in ``keras.ops`` on
these sub-layers' weights: ``kerazoo.models.gpt.step.block_step``. Training
keeps calling the sub-layers instead of that step's pieces, for what a layer
call carries and the raw-weight step does not: dropout, the fused causal
attention kernel (the step's attention is an explicit softmax over a cache,
made for one new position at a time), mixed-precision autocasting (float32
LayerNorm and softmax under a 16-bit policy), and Keras' LoRA and quantized
kernels. ``tests/models/test_gpt_step.py`` holds the step equal to this
forward pass at every position.
"""

import keras
import keras_hub


@keras.saving.register_keras_serializable(package="kerazoo")
class CausalDecoder(keras_hub.layers.TransformerDecoder):
    """``keras_hub.layers.TransformerDecoder`` with a fused causal-attention fast path.

    Takes the same arguments as ``keras_hub.layers.TransformerDecoder``.
    """

    def call(self, decoder_sequence, encoder_sequence=None, decoder_padding_mask=None,
             decoder_attention_mask=None, self_attention_cache=None, use_causal_mask=True,
             training=None, **kwargs):
        plain = (
            use_causal_mask
            and encoder_sequence is None
            and decoder_padding_mask is None
            and decoder_attention_mask is None
            and self_attention_cache is None
            and not any(value is not None for value in kwargs.values())
            and getattr(decoder_sequence, "_keras_mask", None) is None
            and not self._cross_attention_layer
        )
        if not plain:
            return super().call(
                decoder_sequence, encoder_sequence=encoder_sequence,
                decoder_padding_mask=decoder_padding_mask, decoder_attention_mask=decoder_attention_mask,
                self_attention_cache=self_attention_cache, use_causal_mask=use_causal_mask,
                training=training, **kwargs,
            )
        x = self._residual(decoder_sequence, self._self_attention_layer_norm,
                           lambda h: self._causal_attention(h, training), self._self_attention_dropout, training)
        return self._residual(x, self._feedforward_layer_norm, self._feedforward,
                              self._feedforward_dropout, training)

    def _residual(self, x, norm, sublayer, dropout, training):
        """``x + dropout(sublayer(x))`` with the norm first (GPT-2) or last (original Transformer)."""
        h = sublayer(norm(x) if self.normalize_first else x)
        x = x + dropout(h, training=training)
        return x if self.normalize_first else norm(x)

    def _causal_attention(self, x, training):
        """Causal self-attention of ``x`` through ``dot_product_attention(is_causal=True)``."""
        attn = self._self_attention_layer
        out, _ = attn._compute_attention(
            query=attn._query_dense(x), key=attn._key_dense(x), value=attn._value_dense(x),
            attention_mask=None, training=training, use_causal_mask=True,
        )
        return attn._output_dense(out)

    def _feedforward(self, x):
        """The block's MLP (the intermediate dense holds the activation)."""
        return self._feedforward_output_dense(self._feedforward_intermediate_dense(x))
