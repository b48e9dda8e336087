"""Messages between the platform and its sandboxed worker: length-prefixed JSON over the worker's stdin and stdout.

A message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON (an object). Both sides are this
code, so Python's JSON dialect (NaN and infinities allowed) is fine. This module runs inside the sandbox too: standard
library only.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_MESSAGE = 256 << 20  # a result bigger than this belongs in a file of the output directory


class ProtocolError(Exception):
    """The other side sent something that is not a message (it died mid-write, or user code wrote to the pipe)."""


def to_json(value: object) -> object:
    """JSON fallback for the values processors return most: paths as strings, numpy scalars and arrays as numbers."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    for method in ("item", "tolist"):  # numpy scalars, then arrays, without importing numpy
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return convert()
            except (TypeError, ValueError):
                continue
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode(message: dict[str, Any]) -> bytes:
    """One framed message; TypeError/ValueError when it holds something JSON cannot carry."""
    body = json.dumps(message, default=to_json).encode("utf-8")
    if len(body) > MAX_MESSAGE:
        raise ValueError(f"message of {len(body)} bytes exceeds the {MAX_MESSAGE} bytes allowed")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    """The message in a frame's body."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"not a JSON message: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def body_length(header: bytes) -> int:
    """The body length a header announces, checked against the maximum."""
    (length,) = HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ProtocolError(f"message of {length} bytes announced, more than the {MAX_MESSAGE} allowed")
    return int(length)


def write_message(fd: int, message: dict[str, Any]) -> None:
    """Send one message on a blocking file descriptor."""
    write_frame(fd, encode(message))


def write_frame(fd: int, frame: bytes) -> None:
    """Send one encoded message on a blocking file descriptor."""
    data = memoryview(frame)
    while data:
        data = data[os.write(fd, data) :]


def read_message(fd: int) -> dict[str, Any] | None:
    """Receive one message from a blocking file descriptor; None at a clean end of stream."""
    header = _read_exact(fd, HEADER.size)
    if header is None:
        return None
    body = _read_exact(fd, body_length(header))
    if body is None:
        raise ProtocolError("stream ended inside a message")
    return decode(body)


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = os.read(fd, size - len(chunks))
        if not chunk:
            if chunks:
                raise ProtocolError("stream ended inside a message")
            return None
        chunks += chunk
    return bytes(chunks)
