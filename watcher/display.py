"""How the watcher's pages show bytes a producer sent: as text when they are UTF-8, otherwise as a
hex dump (offset, bytes, printable ASCII) — never Python's `b'...'` notation, which a physicist
cannot paste into a hex editor or a JSON validator."""

from __future__ import annotations

from dataclasses import dataclass

SHOWN_BYTES = 2048  # of a dead letter's raw bytes on the page; `manage.py dead_letters` has them all
HEX_ROW = 16


@dataclass(frozen=True)
class ShownBytes:
    kind: str  # "text" (UTF-8), "hex" (not UTF-8) or "none" (Kafka sent no value: a tombstone)
    text: str  # what the page shows, in a <pre>
    size: int  # every byte there is
    cut: bool  # the page shows only the first SHOWN_BYTES


def shown_bytes(data: bytes | None, limit: int = SHOWN_BYTES) -> ShownBytes:
    if data is None:
        return ShownBytes("none", "", 0, False)
    data = bytes(data)
    head, cut = data[:limit], len(data) > limit
    try:
        # A cut may split a character: only a UTF-8 error before the last 3 bytes makes it binary.
        return ShownBytes("text", head.decode(), len(data), cut)
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(head) - 3:
            return ShownBytes("text", head[: exc.start].decode(), len(data), cut)
    return ShownBytes("hex", hex_dump(head), len(data), cut)


def hex_dump(data: bytes) -> str:
    """`00000000  7b 22 61 22 ...  |{"a"...|`, 16 bytes a line, as `hexdump -C` prints them."""
    lines = []
    for offset in range(0, len(data), HEX_ROW):
        row = data[offset : offset + HEX_ROW]
        hex_part = " ".join(f"{byte:02x}" for byte in row)
        ascii_part = "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in row)
        lines.append(f"{offset:08x}  {hex_part:<{HEX_ROW * 3 - 1}}  |{ascii_part}|")
    return "\n".join(lines)
