"""A bytes-level check, before JSON parsing, that never drops a record a stage could match.

Derived from the compiled rule: every stage yields a set of lower-case ASCII fragments one
of which occurs (case-insensitively) in any value that stage's conditions accept
(`compile.Node.required`). A record whose bytes contain none of them cannot match and is
dropped without parsing; that is where the speed of `seqwatch detect` comes from.

Why this is safe (the property tests check it on generated records):
- Fragments hold only printable ASCII other than `"`, `\\` and `/`, so inside a JSON string
  they can only be written verbatim or as `\\uXXXX` escapes; a record containing `\\u`
  is decoded and checked as text instead.
- `bytes.lower()` folds ASCII only, like `str.lower()` on ASCII; the only non-ASCII
  characters whose `str.lower()` contains ASCII letters are U+0130 and U+212A
  (`ASCII_LOWERING`, proven by a test over all code points); a record containing them is
  checked as decoded, lower-cased text too.
- Normalisation only copies raw values or takes substrings of them (basename, DOMAIN\\user
  split, digit strings to integers), except for `normalise.DERIVED_FIELDS`, from which no
  fragment is ever derived.
If any stage yields no fragments, the prefilter passes everything.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from functools import partial

import ahocorasick

from app.engine.compile import CompiledQuery

AUTOMATON_FROM = 8
"""Fragments from which a block scan looks for all of them in one Aho-Corasick pass
instead of one memchr-speed find each: with the 44 fragments of 41 rules the finds took
75% of the ingest stage's decode (2 ms a 128-record block); one or two rules' few
fragments are faster found one by one."""

# Non-ASCII characters whose str.lower() contains an ASCII character (see the module doc).
ASCII_LOWERING: tuple[str, ...] = ("\u0130", "\u212a")
_ASCII_LOWERING_BYTES: tuple[bytes, ...] = tuple(c.encode() for c in ASCII_LOWERING)
# (lead byte, character): a one-byte search first, at memchr speed (see _lead_byte_finder).
_ASCII_LOWERING_LEADS = tuple((c[:1], c) for c in _ASCII_LOWERING_BYTES)
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _lead_byte_finder(haystack: bytes, needle: bytes) -> Callable[[int], int]:
    """`haystack.find(needle, start)`, by its lead byte first.

    bytes.find is slow for these needles (about 1 GB/s on UTF-8 text: 1 ms of a 512 KiB
    block for the two of them, a third of `seqwatch detect`'s time), while their lead
    bytes are rare and a one-byte find runs at memchr speed.
    """
    lead = needle[:1]
    find, startswith = haystack.find, haystack.startswith

    def search(start: int) -> int:
        position = find(lead, start)
        while position >= 0 and not startswith(needle, position):
            position = find(lead, position + 1)
        return position

    return search


def _unescape(match: re.Match[str]) -> str:
    hex_digits, char = match.groups()
    if hex_digits is not None:
        return chr(int(hex_digits, 16))
    return _SIMPLE_ESCAPES.get(char, char)


class Prefilter:
    """`may_match(raw)` is False only for records no stage of the rule can match."""

    def __init__(self, compiled: CompiledQuery) -> None:
        fragments: set[str] = set()
        self.passthrough = False
        for stage in compiled.matchable:  # an `until` event must reach the matcher too
            if stage.required is None:
                self.passthrough = True
                break
            fragments |= stage.required
        # Longest first, then alphabetical: a deterministic order keeps the cost stable.
        self.fragments: tuple[str, ...] = tuple(sorted(fragments, key=lambda f: (-len(f), f)))
        self._bytes: tuple[bytes, ...] = tuple(f.encode("ascii") for f in self.fragments)
        self._automaton: ahocorasick.Automaton | None = None

    @classmethod
    def union(cls, prefilters: list[Prefilter]) -> Prefilter:
        """Passes what any of `prefilters` passes (several rules, one check)."""
        combined = cls.__new__(cls)
        combined.passthrough = any(p.passthrough for p in prefilters)
        fragments = set().union(*(p.fragments for p in prefilters))
        combined.fragments = tuple(sorted(fragments, key=lambda f: (-len(f), f)))
        combined._bytes = tuple(f.encode("ascii") for f in combined.fragments)
        combined._automaton = None
        return combined

    def may_match(self, raw: bytes, low: bytes | None = None) -> bool:
        """`low`: `raw.lower()`, when the caller has it already."""
        if self.passthrough:
            return True
        if low is None:
            low = raw.lower()
        for fragment in self._bytes:
            if fragment in low:
                return True
        if b"\\u" in raw or (
            not raw.isascii() and any(lead in raw and c in raw for lead, c in _ASCII_LOWERING_LEADS)
        ):
            return self._text_may_match(raw)
        return False

    def candidate_records(self, block: bytes, ends: Sequence[int]) -> list[int]:
        """Indices of the records of `block` that may_match() might accept, ascending.

        `ends[i]` is where record i + 1 begins (record i and the one byte after it end
        there); that byte separates the records and no probe contains it (a newline,
        `b"\\n".join(records)`, whatever the records hold themselves). A record is
        a candidate when its lower-cased bytes contain a fragment, or it contains `\\u`
        or an ASCII_LOWERING character (those need the exact text check). Every record
        that may_match() accepts is a candidate; decode() re-checks each one. The probes
        run over the whole block at memchr speed, and each hit skips to the next record.
        """
        found: set[int] = set()
        low = block.lower()
        if len(self._bytes) >= AUTOMATON_FROM:
            probes: list[Callable[[int], int]] = [self._fragment_finder(low)]
        else:
            probes = [partial(low.find, f) for f in self._bytes]
        probes.append(partial(block.find, b"\\u"))
        if not block.isascii():
            probes.extend(_lead_byte_finder(block, c) for c in _ASCII_LOWERING_BYTES)
        last = len(ends) - 1
        for find in probes:
            position = find(0)
            while position >= 0:
                index = bisect.bisect_right(ends, position)
                found.add(index)
                if index >= last:
                    break
                position = find(ends[index])
        return sorted(found)

    def _fragment_finder(self, low: bytes) -> Callable[[int], int]:
        """Where the first fragment at or after `start` begins in `low`, or -1: all
        fragments in one pass (an Aho-Corasick automaton over the bytes as latin-1, one
        character per byte, so positions are byte offsets)."""
        automaton = self._automaton
        if automaton is None:
            automaton = self._automaton = ahocorasick.Automaton()
            for fragment in self.fragments:
                automaton.add_word(fragment, len(fragment))
            automaton.make_automaton()
        text = low.decode("latin-1")

        def find(start: int) -> int:
            for end, length in automaton.iter(text, start):
                return int(end) - int(length) + 1
            return -1

        return find

    def _text_may_match(self, raw: bytes) -> bool:
        """The exact check on decoded, unescaped, Unicode-lower-cased text (rare path)."""
        text = _JSON_ESCAPE.sub(_unescape, raw.decode("utf-8", errors="replace")).lower()
        return any(fragment in text for fragment in self.fragments)
