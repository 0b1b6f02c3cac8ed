"""Where each character of a SQL text sent to DuckDB comes from in the cell.

The SQL DuckDB runs is a slice of the cell (plain SQL), with nested extension statements replaced
by ``SELECT * FROM <result>`` (planner.py), and, with ``sql_dialect`` set, rewritten by sqlglot
(dialects.py). A SourceMap follows those steps back, so DuckDB's error position lands on the
cell's line and column. Pure: no I/O, no DuckDB, no sqlglot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    """``sql[start:end]`` came from ``target`` on: copied character for character (``exact``), or
    written in place of the text there (a nested statement's replacement, a rewritten token)."""

    start: int
    end: int
    target: int
    exact: bool = True


@dataclass(frozen=True)
class SourceMap:
    """Offsets of a SQL text mapped to offsets of the text it was made from (and, through
    ``then``, on to the cell).

    >>> SourceMap((Piece(0, 8, 20),)).cell_offset(7)
    27
    """

    pieces: tuple[Piece, ...]
    then: SourceMap | None = None

    @classmethod
    def shifted(cls, length: int, target: int) -> SourceMap:
        """A text copied whole from ``target`` on."""
        return cls((Piece(0, length, target),))

    def cell_offset(self, offset: int) -> int:
        """The offset in the cell of character ``offset`` of the mapped text."""
        here = self._offset(offset)
        return self.then.cell_offset(here) if self.then is not None else here

    def exact(self, start: int, end: int) -> bool:
        """Whether ``text[start:end]`` is copied unchanged from the cell (so a span keeps its width)."""
        piece = self._piece(start)
        if piece is None or not piece.exact or end > piece.end:
            return False
        if self.then is None:
            return True
        target = self._offset(start)
        return self.then.exact(target, target + (end - start))

    def through(self, inner: SourceMap) -> SourceMap:
        """This map followed by ``inner`` (this one maps into the text ``inner`` maps)."""
        then = self.then.through(inner) if self.then is not None else inner
        return SourceMap(self.pieces, then)

    def _piece(self, offset: int) -> Piece | None:
        for piece in self.pieces:
            if piece.start <= offset < piece.end:
                return piece
        return None

    def _offset(self, offset: int) -> int:
        piece = self._piece(offset)
        if piece is None:
            # Past the end (DuckDB points just after the text for "unexpected end"): the last piece's end.
            before = [p for p in self.pieces if p.end <= offset]
            if not before:
                return self.pieces[0].target if self.pieces else 0
            last = before[-1]
            return last.target + (last.end - last.start if last.exact else 0) + (offset - last.end)
        return piece.target + (offset - piece.start if piece.exact else 0)
