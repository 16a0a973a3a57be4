"""The base of the zoo's functional models (gpt, bert, bilstm, classifier, seq2seq)."""

import keras

from kerazoo.models.tokenizer_holder import TokenizerHolder


class FunctionalZooModel(TokenizerHolder):
    """Mixin for a functional ``keras.Model`` whose layers are made in ``__init__``.

    The layers are assigned before ``keras.Model.__init__`` builds the graph.
    On the torch backend a Keras model is a ``torch.nn.Module``, which refuses
    sub-modules assigned before ``Module.__init__``; keras_hub's Backbone takes
    the same route around it (the functional graph tracks the layers anyway).
    Subclasses call ``_register_torch_params()`` at the end of ``__init__``.
    """

    def __setattr__(self, name, value):
        if name != "tokenizer" and keras.config.backend() == "torch" and not hasattr(self, "_initialized"):
            return object.__setattr__(self, name, value)
        return super().__setattr__(name, value)

    def _register_torch_params(self):
        """Registers the model's variables as its torch parameters (torch backend only).

        Keras fills ``torch_params`` while the setter above still bypasses
        ``torch.nn.Module``, leaving none registered. Keras' torch
        ``train_step`` clears gradients with ``Module.zero_grad()``, which only
        sees registered parameters, so without this every step would add its
        gradients to all earlier ones.
        """
        if keras.config.backend() != "torch":
            return
        import torch

        params = torch.nn.ParameterDict({v.path: v.value for v in self.variables})
        torch.nn.Module.__setattr__(self, "_torch_params", params)
