"""A checkpoint's SentencePiece ``tokenizer.model`` (Llama 2's) on the zoo's id layout.

The zoo's ``SentencePieceTokenizer`` (keras_hub's, TensorFlow ops) needs its
five special pieces at ids 0..4; a Llama 2 model has ``<unk>``, ``<s>``,
``</s>`` at 0..2. The model proto is rewritten rather than wrapped: the
zoo's specials first (the checkpoint's unknown, start and end pieces become
``<unk>``, ``<s>``, ``</s>``; ``<pad>`` and ``<mask>`` are control pieces,
which text never produces), then every other piece in its order, with its
score and type. Pieces, scores and normalizer are the checkpoint's, so the
segmentation is SentencePiece's own.
"""

import os

from sentencepiece import sentencepiece_model_pb2

from kerazoo.text.sentencepiece import SentencePieceTokenizer
from kerazoo.text.special import BOS_ID, EOS_ID, NUM_SPECIAL_TOKENS, PAD_ID, SPECIAL_TOKENS, UNK_ID

_TYPES = sentencepiece_model_pb2.ModelProto.SentencePiece


def read_sentencepiece(folder, eos_id, bos_id=None):
    """The zoo tokenizer of a folder's ``tokenizer.model`` and its id map.

    Args:
        folder: the checkpoint folder.
        eos_id, bos_id: the checkpoint's end and start ids (``config.json``).

    Returns:
        ``(tokenizer, source_ids)``: a ``SentencePieceTokenizer`` and, per
        zoo id, the checkpoint id it stands for (-1: none).

    Raises:
        ValueError: an unreadable model, or special ids it does not hold.
    """
    path = os.path.join(folder, "tokenizer.model")
    try:
        with open(path, "rb") as f:
            model = sentencepiece_model_pb2.ModelProto.FromString(f.read())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except Exception as e:  # protobuf's DecodeError and friends
        raise ValueError(f"{path} is not a SentencePiece model ({type(e).__name__})") from None
    pieces = list(model.pieces)
    unknown = [i for i, p in enumerate(pieces) if p.type == _TYPES.UNKNOWN]
    mapped = {EOS_ID: eos_id, BOS_ID: bos_id, UNK_ID: unknown[0] if unknown else None}
    for zoo_id, hf_id in mapped.items():
        if hf_id is not None and not 0 <= hf_id < len(pieces):
            raise ValueError(f"special token id {hf_id} is not in {path} ({len(pieces)} pieces)")
    source_ids = [-1] * NUM_SPECIAL_TOKENS
    for zoo_id, hf_id in mapped.items():
        if hf_id is not None and hf_id not in source_ids:
            source_ids[zoo_id] = hf_id
    rebuilt = sentencepiece_model_pb2.ModelProto()
    rebuilt.CopyFrom(model)
    del rebuilt.pieces[:]
    for zoo_id, token in enumerate(SPECIAL_TOKENS):
        piece = rebuilt.pieces.add()
        piece.piece, piece.score = token, 0.0
        piece.type = _TYPES.UNKNOWN if zoo_id == UNK_ID else _TYPES.CONTROL
    for hf_id, original in enumerate(pieces):
        if hf_id in source_ids:
            continue
        if original.piece in SPECIAL_TOKENS:
            raise ValueError(f"{path} holds the zoo's special token '{original.piece}' as an ordinary piece")
        if original.type == _TYPES.UNKNOWN:
            raise ValueError(f"{path} has more than one unknown piece")
        rebuilt.pieces.add().CopyFrom(original)
        source_ids.append(hf_id)
    spec = rebuilt.trainer_spec
    spec.pad_id, spec.unk_id, spec.bos_id, spec.eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID
    return SentencePieceTokenizer(proto=rebuilt.SerializeToString()), source_ids
