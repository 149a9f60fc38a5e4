"""Reading ``mongoexport`` files: documents delimited (lines, ``--pretty`` or one JSON
array), decoded as relaxed or canonical Extended JSON, and BSON values made plain JSON.

The Embedding Studio source (``transfer.embedding_studio``) maps what this yields.
Invariants: memory holds one document at a time (a JSON array is read in chunks); a
document that cannot be delimited or decoded raises ``_Refused`` naming why, and reading
resumes with the next one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import IO, Any, Final

from bson import json_util
from bson.codec_options import DatetimeConversion
from bson.json_util import JSONOptions

# $date becomes DatetimeMS: exact integer milliseconds, any year, no timezone guessing.
_JSON_OPTIONS: Final = JSONOptions(
    tz_aware=True, tzinfo=UTC, datetime_conversion=DatetimeConversion.DATETIME_MS
)
_CHUNK = 1 << 20  # bytes read at a time from a JSON array


class _Refused(Exception):
    """A document that cannot be mapped; ``field`` names where, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Raw:
    """One document as read: its position (line, or place in a JSON array) and text."""

    position: int
    text: bytes
    error: str | None = None  # set when the text could not even be delimited
    in_array: bool = False  # position is the place in a JSON array, not a line


# -- reading mongoexport files ------------------------------------------------------------


def _documents(path: Path) -> Iterator[_Raw]:
    """Every document of ``path`` in file order; nothing if the file does not exist."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        first = _first_byte(fh)
        fh.seek(0)
        if first == b"[":
            yield from _array_elements(fh)
        elif first:
            yield from _lines(fh)


def _first_byte(fh: IO[bytes]) -> bytes:
    while chunk := fh.read(4096):
        stripped = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")
        if stripped:
            return stripped[:1]
    return b""


def _lines(fh: IO[bytes]) -> Iterator[_Raw]:
    """One document a line; a ``--pretty`` document runs from a line ``{`` to a line ``}``."""
    pending: list[bytes] = []
    start = 0
    for number, line in enumerate(fh, start=1):
        stripped = line.strip()
        if number == 1:
            stripped = stripped.removeprefix(b"\xef\xbb\xbf")
        if pending:
            pending.append(line)
            if line.rstrip() == b"}":
                yield _Raw(start, b"".join(pending))
                pending = []
        elif stripped == b"{":
            pending, start = [line], number
        elif stripped:
            yield _Raw(number, stripped)
    if pending:
        yield _Raw(start, b"".join(pending), "the document is not closed before the file ends")


_STRUCTURAL: Final = re.compile(rb'["{}\[\]]')
_STRING_END: Final = re.compile(rb'["\\]')
_SCALAR_END: Final = re.compile(rb"[,\]\s]")
_WHITESPACE: Final = b" \t\r\n"


class _ArrayReader:
    """The elements of one JSON array, read in chunks: memory holds one element at a time.

    Elements are delimited by tracking strings and bracket depth only; each element's
    text is then decoded on its own, so a malformed element is one reject, and reading
    resumes after it.
    """

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _more(self) -> bool:
        if self._eof:
            return False
        chunk = self._fh.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + chunk if self._pos else self._buf + chunk
        self._pos = 0
        return True

    def _skip_whitespace(self) -> bytes:
        """The next significant byte (not consumed), or b"" at the end of the file."""
        while True:
            buf, pos = self._buf, self._pos
            while pos < len(buf) and buf[pos] in _WHITESPACE:
                pos += 1
            self._pos = pos
            if pos < len(buf):
                return buf[pos : pos + 1]
            if not self._more():
                return b""

    def elements(self) -> Iterator[_Raw]:
        if self._skip_whitespace() == b"\xef":  # a UTF-8 byte order mark
            self._pos += 3
            self._skip_whitespace()
        self._pos += 1  # the opening bracket
        index = 0
        if self._skip_whitespace() == b"]":
            return
        while True:
            index += 1
            if self._skip_whitespace() in (b"", b",", b"]"):
                yield _Raw(index, b"", "an element is missing in the JSON array", True)
                return
            text = self._element()
            if text is None:
                rest = self._buf[self._pos :]
                yield _Raw(index, rest, "the element is not closed before the file ends", True)
                return
            yield _Raw(index, text, None, True)
            after = self._skip_whitespace()
            self._pos += 1
            if after == b",":
                continue
            if after == b"]":
                if self._skip_whitespace() != b"":
                    yield _Raw(index + 1, b"", "data after the end of the JSON array", True)
                return
            found = "the end of the file" if after == b"" else repr(after.decode(errors="replace"))
            error = f"expected ',' or ']' after element {index}, got {found}"
            yield _Raw(index + 1, b"", error, True)
            return

    def _element(self) -> bytes | None:
        """The text of the element starting at the current position, consumed; None if
        the file ends inside it."""
        start = self._pos
        first = self._buf[start]
        in_string = first == ord('"')
        i = start + 1
        if first not in b'{["':
            while (m := _SCALAR_END.search(self._buf, i)) is None:
                i, start = self._refill(len(self._buf), start)
                if i < 0:
                    self._pos = len(self._buf)
                    return self._buf[start:]
            self._pos = m.start()
            return self._buf[start : m.start()]
        depth = 0 if in_string else 1
        while True:
            if in_string:
                m = _STRING_END.search(self._buf, i)
                if m is not None and m.group() == b"\\":
                    i = m.end() + 1
                    if i <= len(self._buf):
                        continue
                    m = None
                elif m is not None:
                    in_string = False
                    i = m.end()
                    if depth == 0:
                        break
                    continue
            else:
                m = _STRUCTURAL.search(self._buf, i)
                if m is not None:
                    i = m.end()
                    byte = m.group()
                    if byte == b'"':
                        in_string = True
                    elif byte in (b"{", b"["):
                        depth += 1
                    else:
                        depth -= 1
                        if depth == 0:
                            break
                    continue
            # The element goes on past the buffer: read more, keep its start.
            i, start = self._refill(i, start)
            if i < 0:
                return None
        text = self._buf[start:i]
        self._pos = i
        return text

    def _refill(self, i: int, start: int) -> tuple[int, int]:
        """Read more input keeping the element from ``start``; the shifted (i, start), or
        (-1, start) at the end of the file."""
        offset = i - start
        self._pos = start
        if not self._more():
            return -1, self._pos
        return self._pos + offset, self._pos


def _array_elements(fh: IO[bytes]) -> Iterator[_Raw]:
    yield from _ArrayReader(fh).elements()


# -- decoding and mapping -------------------------------------------------------------------


def _extended(obj: dict[str, Any]) -> Any:
    # Only an object with a "$" key can be Extended JSON; the others stay as json made them.
    for key in obj:
        if key[:1] == "$":
            return json_util.object_hook(obj, _JSON_OPTIONS)
    return obj


# One decoder for every document: the C scanner, bson.json_util only where "$" keys are.
_DECODER: Final = json.JSONDecoder(object_hook=_extended)


def _decode(raw: _Raw) -> dict[str, Any]:
    if raw.error is not None:
        raise _Refused("document", raw.error)
    try:
        doc = _DECODER.decode(raw.text.decode("utf-8"))
    except Exception as exc:  # any failure of the decoder on one document is that document's
        reason = str(exc) or type(exc).__name__
        raise _Refused("document", f"not valid (Extended) JSON: {reason}") from None
    if not isinstance(doc, dict):
        raise _Refused("document", f"must be a JSON object, got {_kind(doc)}")
    return doc


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _plain(value: Any) -> Any:
    """``value`` as JSON: BSON types JSON has no word for keep their relaxed Extended JSON."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)  # Int64 is an int subclass
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if math.isnan(value):
            return {"$numberDouble": "NaN"}
        return {"$numberDouble": "-Infinity" if value < 0 else "Infinity"}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
