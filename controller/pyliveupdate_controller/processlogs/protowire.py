"""The protobuf wire format, encode only: the little that `render_pprof` needs.

Varints (wire type 0) and length-delimited fields (wire type 2: bytes, strings, nested
messages, packed repeated varints). Fields equal to their default (0, empty) are left
out, as proto3 encoders do; negative int64 take ten bytes (two's complement).
"""
from __future__ import annotations

VARINT = 0
LENGTH_DELIMITED = 2


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


class Message:
    """A message being encoded: append fields in any order, then `encode()`."""

    def __init__(self):
        self._parts: list[bytes] = []

    def integer(self, number: int, value: int) -> "Message":
        if value:
            self._parts += (_key(number, VARINT), varint(value))
        return self

    def flag(self, number: int, value: bool) -> "Message":
        return self.integer(number, 1 if value else 0)

    def blob(self, number: int, data: bytes) -> "Message":
        self._parts += (_key(number, LENGTH_DELIMITED), varint(len(data)), data)
        return self

    def text(self, number: int, value: str) -> "Message":
        return self.blob(number, value.encode("utf-8", "replace"))

    def submessage(self, number: int, message: "Message") -> "Message":
        return self.blob(number, message.encode())

    def packed(self, number: int, values) -> "Message":
        """A repeated integer field, packed (what proto3 parsers expect by default)."""
        data = b"".join(varint(v) for v in values)
        if data:
            self.blob(number, data)
        return self

    def encode(self) -> bytes:
        return b"".join(self._parts)
