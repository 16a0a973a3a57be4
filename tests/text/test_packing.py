"""Tests of kerazoo.text.packing: each convention against explicit ids.

Ids: <pad> 0, <unk> 1, <s> 2, </s> 3, <mask> 4; text ids start at 5.
"""

import numpy as np
import pytest
import tensorflow as tf

from kerazoo.text import packing


def ragged(rows):
    return tf.ragged.constant(rows, dtype=tf.int32)


def test_the_conventions_name_the_special_ids():
    assert (packing.DOCUMENT_START_ID, packing.SOURCE_END_ID, packing.DECODER_START_ID) == (3, 3, 2)


# Documents: </s> ids


def test_document_ids_open_with_the_end_token():
    ids = packing.document_ids([10, 11, 12])
    assert ids.dtype == np.int32 and ids.tolist() == [3, 10, 11, 12]
    assert packing.document_ids(np.array([], np.int32)).tolist() == [3]
    assert packing.document_ids(tf.constant([7, 8])).tolist() == [3, 7, 8]


def test_document_ids_keep_the_first_ids_within_max_length():
    assert packing.document_ids([10, 11, 12, 13], max_length=3).tolist() == [3, 10, 11]
    assert packing.document_ids([10], max_length=3).tolist() == [3, 10]


def test_document_rows_are_python_ints():
    rows = packing.document_rows([[10, 11], [], np.array([12], np.int64)])
    assert rows == [[3, 10, 11], [3], [3, 12]]
    assert all(type(i) is int for row in rows for i in row)


def test_document_stream_concatenates_documents():
    stream = packing.document_stream([[10, 11], [], [12]])
    assert stream.dtype == np.int32 and stream.tolist() == [3, 10, 11, 3, 3, 12]
    empty = packing.document_stream([])
    assert empty.dtype == np.int32 and empty.shape == (0,)


def test_document_ids_tf_matches_the_list_form_in_a_graph():
    rows = [[10, 11], [], [12, 13, 14]]

    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])
    def pack(ids):
        return packing.document_ids_tf(ids)

    assert pack(ragged(rows)).to_list() == packing.document_rows(rows)
    dense = packing.document_ids_tf(tf.constant([[10, 11], [12, 13]], tf.int64))
    assert dense.dtype == tf.int32 and dense.to_list() == [[3, 10, 11], [3, 12, 13]]
    assert packing.document_ids_tf(tf.ragged.constant([[]], tf.int32, ragged_rank=1)).to_list() == [[3]]


# Seq2seq: source </s>; <s> target -> target </s>


def test_source_ids_end_with_the_end_token_and_report_a_cut():
    assert packing.source_ids([10, 11], max_length=4) == ([10, 11, 3], False)
    assert packing.source_ids([10, 11, 12], max_length=4) == ([10, 11, 12, 3], False)
    assert packing.source_ids([10, 11, 12, 13], max_length=4) == ([10, 11, 12, 3], True)
    assert packing.source_ids([], max_length=4) == ([3], False)


def test_source_ids_tf_matches_the_list_form_in_a_graph():
    rows = [[10, 11], [10, 11, 12, 13, 14], []]

    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])
    def pack(ids):
        return packing.source_ids_tf(ids, 4)

    assert pack(ragged(rows)).to_list() == [packing.source_ids(row, 4)[0] for row in rows]
    dense = packing.source_ids_tf(tf.constant([[10, 11, 12, 13, 14]]), 3)
    assert dense.dtype == tf.int32 and dense.to_list() == [[10, 11, 3]]


def test_target_ids_leave_room_for_one_special_id():
    assert packing.target_ids([10, 11], max_length=3) == ([10, 11], False)
    assert packing.target_ids([10, 11, 12], max_length=3) == ([10, 11], True)


def test_teacher_forcing_shifts_the_target_by_one():
    target = [10, 11]
    assert packing.decoder_ids(target) == [2, 10, 11]
    assert packing.decoder_labels(target) == [10, 11, 3]
    # Decoding starts from <s> alone.
    assert packing.decoder_ids([]) == [2]
    assert packing.decoder_labels(np.array([12])) == [12, 3]


# Classifier rows: <s> ids </s> <pad>...


def test_classifier_ids_wrap_cut_and_pad():
    ids = packing.classifier_ids_tf(ragged([[10, 11], [12, 13, 14, 15, 16], []]), max_length=5)
    assert ids.dtype == tf.int32
    np.testing.assert_array_equal(ids, [[2, 10, 11, 3, 0], [2, 12, 13, 14, 3], [2, 3, 0, 0, 0]])


def test_classifier_ids_pad_to_a_fixed_width_in_a_graph():
    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])
    def pack(ids):
        return packing.classifier_ids_tf(ids, 4, pad_to=6)

    np.testing.assert_array_equal(pack(ragged([[10], [11, 12, 13]])), [[2, 10, 3, 0, 0, 0], [2, 11, 12, 3, 0, 0]])
    dense = packing.classifier_ids_tf(tf.constant([[10, 11]]), 8)
    np.testing.assert_array_equal(dense, [[2, 10, 11, 3]])


@pytest.mark.parametrize("max_length", [1, 2, 3])
def test_short_limits_still_hold_the_special_ids(max_length):
    assert packing.document_ids([10, 11], max_length=max_length).tolist() == [3, 10, 11][:max_length]
    assert packing.source_ids([10, 11], max_length)[0][-1] == 3
