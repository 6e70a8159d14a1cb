"""Sign bits in numpy, for the process-local shortlist indexes of memory and knowledge (issue #28).

A table's `embedding_bits` (binary_quantize(embedding)::varbit, migration 0036) read with `varbit_send` and packed
in one bytea per user (`string_agg`), unpacked into uint64 words laid out word-major — (words, rows), so one XOR and
one popcount per word run over a contiguous row — and compared with a query's bits by Hamming distance. Also the
byte budget both indexes keep their arrays under, least recently used first out. Used by isa/memory/local_index.py
and isa/knowledge/local_index.py; nothing here knows either table.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt


def unpack_bits(raw: bytes, n: int) -> tuple[npt.NDArray[np.uint64], int]:
    """`n` rows of `string_agg(varbit_send(bits))` (each a 4-byte big-endian length, then the bits) as (words, n)
    uint64, zero-padded to whole words, and the number of bits (dimensions) of the rows (0 without rows)."""
    stride = len(raw) // n if n else 4
    packed = np.frombuffer(raw, np.uint8).reshape(n, stride)
    dims = int.from_bytes(raw[:4], "big") if n else 0
    width = stride - 4
    words = (width + 7) // 8
    bits = np.zeros((n, words * 8), np.uint8)
    bits[:, :width] = packed[:, 4:]
    return np.ascontiguousarray(bits.view(np.uint64).reshape(n, words).T), dims


def query_bits(vector: Sequence[float], words: int) -> npt.NDArray[np.uint64]:
    """binary_quantize(vector) (bit = component > 0, first component in the high bit) packed like unpack_bits."""
    packed = np.packbits(np.asarray(vector) > 0)
    out = np.zeros(words * 8, np.uint8)
    out[: packed.size] = packed
    return out.view(np.uint64)


def hamming(bits: npt.NDArray[np.uint64], q: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
    """The Hamming distance of every row of `bits` (words, n) to the query's bits `q` (words,)."""
    distance: npt.NDArray[np.intp] = np.bitwise_count(bits[0] ^ q[0]).astype(np.intp)
    for word in range(1, bits.shape[0]):
        distance += np.bitwise_count(bits[word] ^ q[word])
    return distance


def uuid_literal(ids: npt.NDArray[np.uint8]) -> str:
    """(n, 16) uuid bytes as a Postgres uuid[] literal: one text parameter (~2 ms less than 1,500 strings)."""
    hexed = ids.tobytes().hex()
    return "{" + ",".join(hexed[i : i + 32] for i in range(0, len(hexed), 32)) + "}"


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Sized)


class ByteBudget(Generic[K, V]):
    """Arrays by key, the least recently used dropped while their bytes together exceed `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[K, V] = OrderedDict()
        self.nbytes = 0

    def get(self, key: K) -> V | None:
        """The held value (now the most recently used), or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> bool:
        """Hold `value` (replacing the key's old one), dropping the least recently used beyond the budget; False
        (and nothing held for the key) when the value alone exceeds the budget."""
        self.drop(key)
        if value.nbytes > self.max_bytes:
            return False
        self._items[key] = value
        self.nbytes += value.nbytes
        while self.nbytes > self.max_bytes:
            self.drop(next(iter(self._items)))
        return True

    def drop(self, key: K) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes

    def __iter__(self) -> Iterator[K]:
        """The keys held, least recently used first (a copy: dropping while iterating is fine)."""
        return iter(list(self._items))

    def __contains__(self, key: object) -> bool:
        return key in self._items
