"""Identifiers: 21-character URL-safe nanoids, the id of every row the service creates."""

from nanoid import generate

ID_ALPHABET = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ID_SIZE = 21


def new_id() -> str:
    return generate(ID_ALPHABET, ID_SIZE)
