"""Payload parsers for laser messages: JSON, msgpack and plain `key=value` text, or `auto`."""

import base64

import msgpack
import orjson

INT_RANGE = range(-(2**63), 2**64)  # what JSON encoders (orjson, BSON) take as an integer


class ParseError(ValueError):
    pass


def json_safe(value):
    """`value` in a form JSON (and so the log, Kafka and MongoDB) can hold, nothing dropped:
    bytes → {"$binary": base64 text}, a msgpack extension → {"$ext": code, "$binary": ...},
    a msgpack timestamp → ns since the epoch, map keys → text, integers beyond 64 bits → their digits as text."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$binary": base64.b64encode(value).decode()}
    if isinstance(value, msgpack.ExtType):
        return {"$ext": value.code, "$binary": base64.b64encode(value.data).decode()}
    if isinstance(value, msgpack.Timestamp):
        return value.to_unix_nano()
    if isinstance(value, int) and not isinstance(value, bool) and value not in INT_RANGE:
        return str(value)
    return value


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
    return json_safe(message)


def parse_value(text: str):
    for convert in (int, float):
        try:
            return json_safe(convert(text))
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
