"""Payload parsers for laser messages: JSON, msgpack and plain `key=value` text, or `auto`."""

import msgpack
import orjson


class ParseError(ValueError):
    pass


def parse_json(raw: bytes) -> dict:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ParseError(f"expected a JSON object, got {type(message).__name__}")
    return message


def parse_msgpack(raw: bytes) -> dict:
    try:
        message = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad bytes
        raise ParseError(f"not valid msgpack: {exc}") from None
    if not isinstance(message, dict):
        raise ParseError(f"expected a msgpack map, got {type(message).__name__}")
    return {str(k): v for k, v in message.items()}


def parse_value(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_key_value(raw: bytes) -> dict:
    """`shot=12 energy=1.5 mode=single` (spaces, commas or semicolons between pairs)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 text: {exc}") from None
    message = {}
    for pair in text.replace(",", " ").replace(";", " ").split():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ParseError(f"'{pair}' is not key=value")
        message[key] = parse_value(value)
    if not message:
        raise ParseError("empty message")
    return message


MSGPACK_MAPS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}  # first byte of a msgpack map (fixmap, map16, map32)


def parse_auto(raw: bytes) -> dict:
    """For a laser that sends more than one format on one socket: a JSON object, a msgpack map,
    else `key=value` text, told apart by the first byte (`{`; a map's type byte, never text)."""
    start = raw.lstrip()[:1]
    if start == b"{":
        return parse_json(raw)
    if start and start[0] in MSGPACK_MAPS:
        return parse_msgpack(raw)
    return parse_key_value(raw)


PARSERS = {"json": parse_json, "msgpack": parse_msgpack, "kv": parse_key_value, "auto": parse_auto}
