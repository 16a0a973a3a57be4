"""Lets a zoo model carry the shared tokenizer inside its `.keras` file."""

import keras

from kerazoo.training import precision


class TokenizerHolder:
    """Mixin: a ``tokenizer`` attribute that is saved, but is not a layer.

    Keras' saving walks every attribute of a model that is a Keras object and
    writes its assets, so a tokenizer held here lands in the `.keras` file with
    its vocabulary. We bypass the layer tracker on purpose: a tracked layer
    would join ``Sequential.layers`` and be wired into the stack.
    """

    def __setattr__(self, name, value):
        # Route around Keras' tracker and torch.nn.Module.__setattr__ (which
        # registers any Module-valued attribute, a tokenizer layer included,
        # as a sub-module and would skip the property setter below).
        if name == "tokenizer":
            return object.__setattr__(self, "_kerazoo_tokenizer", value)
        return super().__setattr__(name, value)

    @property
    def tokenizer(self):
        """The tokenizer layer the model was trained with, or None."""
        return self.__dict__.get("_kerazoo_tokenizer")

    def _tokenizer_config(self):
        """The tokenizer's serialized config, for ``get_config``."""
        if self.tokenizer is None:
            return None
        return keras.saving.serialize_keras_object(self.tokenizer)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuilds the model from its hyper-parameters and tokenizer config.

        The zoo's models are built from hyper-parameters (keras_hub's
        Backbone pattern), not from a serialized layer graph; they are built
        under the dtype policy they were saved with.
        """
        config = dict(config)
        tokenizer = config.pop("tokenizer", None)
        if isinstance(tokenizer, dict):
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        policy = config.pop("dtype", None) or keras.config.dtype_policy().name
        if isinstance(policy, dict):  # a serialized DTypePolicy
            policy = policy.get("config", {}).get("name", "float32")
        with precision.dtype_policy(policy):
            return cls(tokenizer=tokenizer, **config)
