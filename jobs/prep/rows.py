"""Where the rows of an input file begin and end, as the schema means it, before pyarrow parses them.

The schema ends a row with LF; one CR directly before a row's end is dropped (CRLF files read like LF
files); any other CR is an ordinary character of its field. pyarrow's CSV reader ends a row at every CR
instead, needs a row that crosses the end of a block to end within the next block, and cannot report a
row of the wrong field count that is not UTF-8 (its invalid-row handler gets the row as text: the read
fails). RowStream stands between the decompressed text of one file and pyarrow's reader, which reads
it as a file (read()):
- it consumes the header line itself (header());
- it hands pyarrow the text piece by piece, unchanged and uncopied, having checked the whole rows of
  the piece at once (memchr for CR, and two counting passes when there is one, as in a CRLF file; UTF-8
  unless the piece is ASCII, validated in place by Arrow) and, with the next piece read ahead, the row
  crossing into it (it ends there, no bare CR, UTF-8);
- a row that does not pass is taken out of the text: read whole and handed over as a block of its own
  (a long row), or kept for `take_rows_aside` (a bare CR or bytes that are not UTF-8; the caller splits
  it on tabs), or, longer than `max_row_bytes`, counted in `rows_too_long` and skipped unheld;
- no block but the last ends with a CR: a CRLF split between two pieces goes to pyarrow within one block
  (_crossing_row_passes says why);
- so a row of any length up to `max_row_bytes` is read, and a long row is never mistaken for a corrupt
  file. pyarrow calls read() on its own I/O thread; the rows set aside are handed over under a lock."""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable

import pyarrow as pa

PIECE_BYTES = 4 << 20
"""Bytes of text taken from the file at a time: a block handed to pyarrow is about this size."""
MAX_ROW_BYTES = 64 << 20
"""Longer rows are counted as row_too_long and skipped: they bound the memory one row may take. Real
reviews are kilobytes; a row this long is a file without line ends (or with CR-only line ends)."""
MAX_HEADER_BYTES = 1 << 20
HEADER_PIECE_BYTES = 64 << 10

Block = bytes | memoryview


class HeaderTooLongError(ValueError):
    """No line end within the first MAX_HEADER_BYTES of a file."""


class RowStream:
    """The text of one file, after its header, as pyarrow is to parse it; see the module docstring."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        *,
        max_row_bytes: int = MAX_ROW_BYTES,
        piece_bytes: int = PIECE_BYTES,
    ) -> None:
        # A row handed over within the pieces is shorter than two pieces: none over the limit slips by.
        if max_row_bytes < 2 * piece_bytes:
            raise ValueError("max_row_bytes must be at least twice piece_bytes")
        self._read = read
        self._max_row = max_row_bytes
        self._piece = piece_bytes
        self._held = b""  # the piece being handed over, from self._start on
        self._start = 0
        self._continues = False  # the held piece begins with the end of a row already handed over
        self._ahead: bytes | None = None  # the piece after it, read ahead
        self._eof = False  # the source has nothing after self._ahead
        self._row: list[Block] | None = None  # the start of a row taken out of the text, while it lasts
        self._row_bytes = 0
        self._skipping = False  # inside a row already known to be too long
        self._aside: list[bytes] = []
        self._lock = threading.Lock()
        self._peeked: Block | None = None
        self.rows_too_long = 0
        self.closed = False

    # ------------------------------------------------------------------------------------- header

    def header(self) -> bytes | None:
        """The first line, without its line end; None when the file holds no text at all."""
        head = b""
        while b"\n" not in head:
            if len(head) > MAX_HEADER_BYTES:
                raise HeaderTooLongError(f"no line end within the first {MAX_HEADER_BYTES >> 20} MiB")
            # Small pieces: a stream broken further on fails later, not while its header is read.
            piece = self._read(min(HEADER_PIECE_BYTES, self._piece))
            if not piece:
                self._eof = True
                return _drop_line_end(head) if head else None
            head += piece
        line, _, self._held = head.partition(b"\n")
        if len(line) > MAX_HEADER_BYTES:
            raise HeaderTooLongError(f"no line end within the first {MAX_HEADER_BYTES >> 20} MiB")
        return _drop_line_end(line)

    # ------------------------------------------------------------------------------------- pyarrow's file

    def has_rows(self) -> bool:
        """Whether any text is left for pyarrow (which refuses a stream without any)."""
        if self._peeked is None:
            self._peeked = self.read()
        return len(self._peeked) > 0

    def read(self, n: int = -1) -> Block:
        """The next block of text (any size: pyarrow takes what it gets); b"" at the end."""
        if self._peeked is not None:
            peeked = self._peeked
            self._peeked = None
            return peeked
        while True:
            block = self._next_block()
            if block is None:
                return b""
            if len(block):
                return block

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def take_rows_aside(self) -> list[bytes]:
        """The rows set aside so far (a bare CR, or not UTF-8), each without its line end; forgets them."""
        with self._lock:
            rows, self._aside = self._aside, []
        return rows

    # ------------------------------------------------------------------------------------- internals

    def _next_block(self) -> Block | None:
        """The next block; b"" when this step handed over nothing, None at the end."""
        if not self._fill():
            return self._end_of_text()
        piece, start = self._held, self._start
        if self._row is not None or self._skipping:
            row_end = piece.find(b"\n", start)
            self._start = len(piece) if row_end < 0 else row_end + 1
            if row_end < 0:
                self._grow_row(memoryview(piece)[start:])
                return b""
            return self._end_row(memoryview(piece)[start:row_end])
        last_end = piece.rfind(b"\n", start)
        self._start = len(piece)
        continues = self._continues and start == 0
        self._continues = False
        if last_end < 0:  # no row ends in the rest of this piece: it starts a long one
            self._row = []
            self._grow_row(memoryview(piece)[start:])
            return b""
        end = len(piece)
        if last_end + 1 < end:
            if self._crossing_row_passes(piece, last_end):
                self._continues = True
            else:  # the row crossing into the next piece is taken out
                end = last_end + 1
                self._row = []
                self._grow_row(memoryview(piece)[end:])
        return self._rows_for_pyarrow(piece, start, end, continues=continues)

    def _fill(self) -> bool:
        """Make self._held hold text not yet handed over; False at the end of the text."""
        while self._start >= len(self._held):
            piece = self._next_piece()
            self._ahead = None
            if not piece:
                return False
            self._held, self._start = piece, 0
        return True

    def _next_piece(self) -> bytes:
        """The piece after the held one (read ahead, kept until _fill takes it); b"" at the end."""
        if self._ahead is None:
            self._ahead = b"" if self._eof else self._read(self._piece)
            self._eof = not self._ahead
        return self._ahead

    def _crossing_row_passes(self, piece: bytes, last_end: int) -> bool:
        """Whether the row after piece[last_end] may go to pyarrow as it is: it ends in the next piece (or
        the text ends), holds no CR in this piece (at the very end of the text excepted) and none in the
        next but one directly before its LF, and is UTF-8."""
        after = self._next_piece()
        cr = piece.find(b"\r", last_end + 1)
        if not after:  # the last row of the text, without LF; a CR at the very end ends it
            return (cr < 0 or cr == len(piece) - 1) and _is_utf8(piece[last_end + 1 :])
        row_end = after.find(b"\n")
        if row_end < 0:
            return False
        # A CR in this piece's part, even one whose LF starts the next piece: the row is taken out and
        # handed over whole. Arrow's CSV reader skips an LF that starts a block after a block ending with
        # CR, and a block that was that LF alone ended its stream there: every row after it was lost
        # (pyarrow 26.0.1; apache/arrow#51368, the straddling-CRLF handling in CSVBufferIterator).
        if cr >= 0:
            return False
        cr = after.find(b"\r", 0, row_end)
        return (cr < 0 or cr == row_end - 1) and _is_utf8(piece[last_end + 1 :] + after[:row_end])

    def _rows_for_pyarrow(self, piece: bytes, start: int, end: int, *, continues: bool) -> Block:
        """piece[start:end] as pyarrow is to get it: as it is (a view) unless a row in it must be set
        aside (_must_set_aside). `continues`: the text begins with the end of a row that crossed from
        the previous piece; it, and a row crossing into the next piece at the end, passed
        _crossing_row_passes. The whole rows between are checked at once (memchr and count passes for
        CR; UTF-8 unless the piece is ASCII); only when that fails are they looked at one by one."""
        view = memoryview(piece)[start:end]
        rows_from = piece.find(b"\n", start, end) + 1 if continues else start
        rows_to = piece.rfind(b"\n", start, end) + 1
        if rows_to <= rows_from or _plain(piece, rows_from, rows_to):
            return view
        rows = bytes(view).split(b"\n")
        crossing = rows.pop()  # b"" when the block ends with LF
        kept: list[bytes] = []
        aside: list[bytes] = []
        for i, row in enumerate(rows):
            body = _drop_line_end(row)
            (aside if _must_set_aside(body) and not (i == 0 and continues) else kept).append(row)
        if not aside:
            return view
        with self._lock:
            self._aside.extend(_drop_line_end(row) for row in aside)
        return b"".join(row + b"\n" for row in kept) + crossing

    def _grow_row(self, part: Block) -> None:
        """More of the row taken out (held until it ends, or counted once it is too long)."""
        if self._skipping or self._row is None:
            return
        self._row.append(part)
        self._row_bytes += len(part)
        if self._row_bytes > self._max_row:
            self._row, self._row_bytes = None, 0
            self._skipping = True

    def _end_row(self, last_part: Block) -> Block:
        """The row taken out ends with `last_part`: a block of its own, set aside, or counted."""
        row, length = self._row, self._row_bytes + len(last_part)
        self._row, self._row_bytes = None, 0
        if self._skipping or row is None or length > self._max_row:
            self._skipping = False
            self.rows_too_long += 1
            return b""
        text = b"".join([*row, last_part])
        body = _drop_line_end(text)
        if _must_set_aside(body):
            with self._lock:
                self._aside.append(body)
            return b""
        return text + b"\n"

    def _end_of_text(self) -> Block | None:
        """At the end of the text: the row taken out, if one is under way (it ends here)."""
        if self._row is None and not self._skipping:
            return None
        return self._end_row(b"")


def _must_set_aside(body: bytes) -> bool:
    """Whether a row (without its line end) must not go to pyarrow: it holds a bare CR (pyarrow would end
    the row there) or bytes that are not UTF-8 (pyarrow cannot report a row of the wrong field count that
    is not UTF-8: its invalid-row handler gets the row as text, and the read fails)."""
    return b"\r" in body or not _is_utf8(body)


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _plain(piece: bytes, start: int, end: int) -> bool:
    """Whether the whole rows piece[start:end] may all go to pyarrow: no CR but before an LF, UTF-8."""
    if piece.find(b"\r", start, end) >= 0 and piece.count(b"\r", start, end) != piece.count(
        b"\r\n", start, end
    ):
        return False
    if piece.isascii():
        return True
    # Validated in place by Arrow (SIMD), as one string value spanning the rows: no copy, no str.
    span = pa.Array.from_buffers(
        pa.string(),
        1,
        [
            None,
            pa.py_buffer(array("i", [0, end - start]).tobytes()),
            pa.py_buffer(piece).slice(start, end - start),
        ],
    )
    try:
        span.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _drop_line_end(line: bytes) -> bytes:
    """A row's text without the one CR that may stand before its LF (CRLF) or before the end of the file."""
    return line[:-1] if line.endswith(b"\r") else line
