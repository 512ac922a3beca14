"""Identifiers: 21-character URL-safe nanoids, the id of every row the service creates.

nanoid's algorithm (``nanoid.generate``) draws random bytes, masks each to the bits the alphabet needs and keeps
those that index into it. Our alphabet has exactly 64 symbols, so every byte masked to 6 bits is kept and the
id is simply 21 random bytes, each mapped to ``ID_ALPHABET[byte & 63]``. :func:`new_id` does that mapping with one
``bytes.translate`` instead of nanoid's per-character Python loop: the same ids (same distribution, same
randomness source, ``os.urandom``) for less CPU — it runs twice per send (message and request ids).
``tests/unit/test_ids.py`` checks it against ``nanoid.method`` on the same bytes.
"""

import os

ID_ALPHABET = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ID_SIZE = 21
_BYTE_TO_SYMBOL = bytes(ord(ID_ALPHABET[b & 63]) for b in range(256))


def id_from_bytes(random_bytes: bytes) -> str:
    return random_bytes.translate(_BYTE_TO_SYMBOL).decode("ascii")


def new_id() -> str:
    return id_from_bytes(os.urandom(ID_SIZE))
