"""Search over encrypted messages with keyed, per-citizen token hashes.

Each processed message stores, next to its ciphertext, the set of 64-bit truncated
HMAC-SHA256 values of its normalised words and word prefixes, keyed by a search key derived
from the recipient's data key. The index therefore never holds a word in clear, the same word
hashes differently for two citizens (no cross-citizen frequency analysis), and destroying the
data key makes the tokens meaningless too. What it does leak, and the limits, are in
``docs/search.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
import unicodedata
from collections.abc import Iterable

MIN_PREFIX = 3
MAX_PREFIX = 12
MAX_TOKENS_PER_MESSAGE = 4000
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def search_key(data_key: bytes) -> bytes:
    return hmac.digest(data_key, b"civio/search/v1", "sha256")


def normalise(text: str) -> str:
    """Lower case, accents removed: "Città" and "CITTA" are the same word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def indexed_terms(texts: Iterable[str]) -> set[str]:
    """Every word, and every prefix of 3..12 characters of it (so "resid" finds "residenza")."""
    terms: set[str] = set()
    for text in texts:
        for word in words(text):
            if len(word) < 2:
                continue
            terms.add(word)
            for end in range(MIN_PREFIX, min(len(word), MAX_PREFIX) + 1):
                terms.add(word[:end])
            if len(terms) >= MAX_TOKENS_PER_MESSAGE:
                return terms
    return terms


def query_terms(query: str) -> list[str]:
    """Terms a query must all match; a term longer than 12 characters is matched on its first
    12 (prefixes are indexed up to that length)."""
    out = []
    for word in words(query):
        if len(word) < 2:
            continue
        out.append(word if len(word) <= MAX_PREFIX else word[:MAX_PREFIX])
    return list(dict.fromkeys(out))


def token_hash(key: bytes, term: str) -> int:
    return _truncate(hmac.digest(key, term.encode(), hashlib.sha256))


def tokens_for(key: bytes, texts: Iterable[str]) -> list[int]:
    # Same values as ``token_hash``; the keyed state is computed once and copied per term,
    # which saves a third of the processing worker's hashing time (py-spy: tokens were 15%
    # of a loaded process).
    fresh = hmac.new(key, digestmod="sha256").copy
    tokens = set()
    for term in indexed_terms(texts):
        one = fresh()
        one.update(term.encode())
        tokens.add(_first_int64(one.digest())[0])
    return sorted(tokens)


_first_int64 = struct.Struct(">q").unpack_from


def _truncate(digest: bytes) -> int:
    return int(_first_int64(digest)[0])
