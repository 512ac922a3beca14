"""Ids: messaging.store.ids.new_id is nanoid's algorithm for our 64-symbol alphabet, done with one bytes.translate."""

from __future__ import annotations

import os
from collections import Counter

from nanoid.method import method

from messaging.store.ids import ID_ALPHABET, ID_SIZE, id_from_bytes, new_id


def test_an_id_is_what_nanoid_makes_of_the_same_random_bytes() -> None:
    for _ in range(200):
        random_bytes = os.urandom(64)
        expected = method(lambda step, b=random_bytes: bytearray(b[:step]), ID_ALPHABET, ID_SIZE)
        assert id_from_bytes(random_bytes[:ID_SIZE]) == expected


def test_new_ids_use_the_whole_alphabet_at_the_right_length_and_do_not_repeat() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert {len(i) for i in ids} == {ID_SIZE}
    symbols = Counter("".join(ids))
    assert set(symbols) == set(ID_ALPHABET)
    expected = len(ids) * ID_SIZE / len(ID_ALPHABET)  # ~1,640 per symbol
    assert all(0.8 * expected < n < 1.2 * expected for n in symbols.values())
