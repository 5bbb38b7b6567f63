"""Token windows: the one splitting rule of the local and the remote embedders.

``on_long='split'`` cuts a long document into windows of at most ``window`` tokens that overlap
by ``overlap`` tokens. The cut is made on token boundaries of the original text (so every piece
is a substring of it) and never inside a word: a window that would end or start in the middle of
a word moves back to the word's first token. The tokenizer only supplies, for each token, its
character span and whether it continues the word of the token before it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def token_windows(text: str, offsets: Sequence[tuple[int, int]], continues_word: Sequence[bool],
                  window: int, overlap: int) -> list[str]:
    """Cut ``text`` into overlapping windows of tokens.

    Args:
        text: the text the offsets point into.
        offsets: ``(start, end)`` character span of each token (no special tokens).
        continues_word: for each token, whether it continues the word of the previous token.
        window: most tokens per piece (at least 1).
        overlap: tokens shared by consecutive pieces (0 <= overlap < window).

    Returns:
        ``[text]`` when it fits in one window, else the pieces in order.
    """
    n = len(offsets)
    if n <= window:
        return [text]

    def inside_word(i: int) -> bool:  # token i continues the word of token i - 1
        return 0 < i < n and continues_word[i]

    pieces, start = [], 0
    while True:
        end = min(start + window, n)
        cut = end
        while inside_word(cut) and cut - 1 > start:  # never cut a word in two
            cut -= 1
        end = cut if not inside_word(cut) else end
        pieces.append(text[offsets[start][0]:offsets[end - 1][1]])
        if end == n:
            return pieces
        nxt = max(end - overlap, start + 1)
        while inside_word(nxt) and nxt - 1 > start:
            nxt -= 1
        start = nxt


def word_continuation(word_ids: Sequence[int | None]) -> list[bool]:
    """``continues_word`` from a fast tokenizer's word ids."""
    return [i > 0 and w is not None and w == word_ids[i - 1] for i, w in enumerate(word_ids)]


def adjacency_continuation(text: str, offsets: Sequence[tuple[int, int]]) -> list[bool]:
    """``continues_word`` from character spans alone (a tokenize endpoint gives no word ids): a
    token continues a word when it starts where the previous token ended and neither character at
    that boundary ends a word by BERT's rule (whitespace, punctuation and CJK characters are
    words' edges; the rule of BERT's pre-tokenizer, which BGE and MiniLM use)."""
    out = [False] * len(offsets)
    for i in range(1, len(offsets)):
        start, prev_end = offsets[i][0], offsets[i - 1][1]
        out[i] = (start == prev_end and 0 < start < len(text)
                  and not _word_edge(text[start - 1]) and not _word_edge(text[start]))
    return out


# CJK ideograph blocks, as BERT's basic tokenizer lists them: each character is a word.
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _word_edge(ch: str) -> bool:
    code = ord(ch)
    if ch.isspace() or any(lo <= code <= hi for lo, hi in _CJK):
        return True
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True  # ASCII symbols count as punctuation for BERT
    return unicodedata.category(ch).startswith("P")


def byte_to_char_offsets(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """UTF-8 byte spans (what TEI's ``/tokenize`` returns) as character spans of ``text``."""
    char_at: list[int] = []
    for i, ch in enumerate(text):
        char_at.extend([i] * len(ch.encode("utf-8")))
    char_at.append(len(text))
    last = len(char_at) - 1

    def to_char(b: int) -> int:
        return char_at[min(max(b, 0), last)]

    return [(to_char(s), to_char(e)) for s, e in spans]
