"""Decoding a block of NDJSON lines at once: `seqwatch detect`'s fast path.

Shared by `Engine` and `RuleSet`: anything with `decode()`, a `prefilter` (or None), a
`stats` with `received`/`dropped`, and `max_event_bytes`.
"""

from __future__ import annotations

import bisect
from typing import Any

from app.engine.event import Decoded, Source


class BlockScanner:
    prefilter: Any
    stats: Any
    max_event_bytes: int

    def decode(self, raw: bytes, source: Source) -> Decoded:
        raise NotImplementedError

    def scan_block(
        self, block: bytes, topic: str, first_line: int = 1
    ) -> tuple[int, list[Decoded]]:
        """decode() over every line of `block` (NDJSON), with Source(topic, 0, line number).

        Returns (newlines in block, results of the lines that were not dropped). Same results
        and counters as calling decode() line by line (blank lines skipped), but a "clean"
        block (every line `{...}`, valid UTF-8, not too large) is prefiltered as a whole:
        one lower() and a few memchr-speed searches over the block find the lines that
        contain a rule fragment, and only those are decoded. `block` holds whole lines;
        the last one may lack its newline.
        """
        prefilter = self.prefilter
        if not block:
            return 0, []
        newlines = (
            self._newlines(block)
            if prefilter is not None
            and not prefilter.passthrough
            and len(block) <= self.max_event_bytes
            else None
        )
        if newlines is None:
            return block.count(b"\n"), self._scan_lines(block, topic, first_line)
        starts = prefilter.candidate_lines(block)  # type: ignore[union-attr]
        lines = len(newlines) + (0 if block[-1] == 0x0A else 1)
        skipped = lines - len(starts)
        self.stats.received += skipped
        self.stats.dropped += skipped
        results: list[Decoded] = []
        decode = self.decode
        for start in starts:
            # newlines before `start` = index of the line; its end is the next newline
            index = bisect.bisect_left(newlines, start)
            end = newlines[index] if index < len(newlines) else len(block)
            result = decode(block[start:end], Source(topic, 0, first_line + index))
            if result is not None:
                results.append(result)
        return len(newlines), results

    @staticmethod
    def _newlines(block: bytes) -> list[int] | None:
        """Positions of the newlines if every line is `{...}` (none blank or padded) and the
        block is valid UTF-8; else None. One memchr-speed find per line."""
        if block[0] != 0x7B:
            return None
        find = block.find
        last = len(block) - 1
        positions: list[int] = []
        append = positions.append
        position = find(b"\n")
        while position >= 0:
            if block[position - 1] != 0x7D:
                return None
            append(position)
            if position == last:
                break
            if block[position + 1] != 0x7B:
                return None
            position = find(b"\n", position + 1)
        else:
            if block[last] != 0x7D:
                return None
        if not block.isascii():
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return positions

    def _scan_lines(self, block: bytes, topic: str, first_line: int) -> list[Decoded]:
        results: list[Decoded] = []
        for index, line in enumerate(block.split(b"\n")):
            if line.strip():  # a blank line, or the empty piece after the last newline
                result = self.decode(line, Source(topic, 0, first_line + index))
                if result is not None:
                    results.append(result)
        return results
