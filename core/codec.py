"""Avro single-object encoding of every mugpos event, plus JSON input for images.

Single-object encoding (``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint + body) lets any
Avro library decode a message without a schema registry: the fingerprint names the writer schema.
Readers resolve it against their own schema, so old readers keep reading newer writers (and the
reverse) as long as schema changes follow Avro's compatibility rules.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.validation import validate

from mugpos import schemas

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8

Record = dict[str, Any]


class CodecError(ValueError):
    """A payload that cannot become an event. ``reason`` is a stable code for dead letters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def schema_fingerprint(schema: Any) -> bytes:
    """CRC-64-AVRO fingerprint of a parsed schema, in the byte order single-object encoding uses."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


class Codec:
    """Encodes and decodes events; knows every writer schema it may meet by fingerprint."""

    def __init__(self) -> None:
        self._writers: dict[bytes, Any] = {}
        self._current: dict[str, tuple[bytes, Any]] = {}
        for name, parsed in schemas.all_schemas().items():
            self._current[name] = (self.register(parsed), parsed)
        for parsed in schemas.history():
            self.register(parsed)

    def register(self, parsed_schema: Any) -> bytes:
        """Teach the codec another writer schema (e.g. an older or newer version); returns its fingerprint."""
        fp = schema_fingerprint(parsed_schema)
        self._writers[fp] = parsed_schema
        return fp

    def fingerprint_of(self, name: str) -> bytes:
        """Fingerprint of the current schema of record ``name``."""
        return self._current[_short(name)][0]

    def encode(self, name: str, record: Mapping[str, Any], schema: Any | None = None) -> bytes:
        """Encode ``record`` as record type ``name`` (or with an explicit writer ``schema``)."""
        if schema is None:
            fp, schema = self._current[_short(name)]
        else:
            fp = self.register(schema)
        try:
            validate(record, schema, raise_errors=True)
        except Exception as exc:  # fastavro raises ValidationError or ValueError/TypeError
            raise CodecError("invalid_record", f"not a valid {_short(name)}: {exc}") from None
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(fp)
        schemaless_writer(buf, schema, dict(record))
        return buf.getvalue()

    def decode(self, data: bytes, name: str, reader_schema: Any | None = None) -> Record:
        """Decode a single-object-encoded ``name`` record, resolving the writer schema to the reader's."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise CodecError("undecodable", f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
            raise CodecError(
                "undecodable", "not an Avro single-object message (expected the C3 01 marker and a fingerprint)"
            )
        fp = data[len(MAGIC) : HEADER_SIZE]
        writer = self._writers.get(fp)
        if writer is None:
            raise CodecError("unknown_schema", f"unknown writer schema fingerprint {fp.hex()}")
        reader = reader_schema if reader_schema is not None else self._current[_short(name)][1]
        if _short(writer["name"]) != _short(reader["name"]):
            raise CodecError("schema_mismatch", f"message is a {_short(writer['name'])}, expected {_short(name)}")
        body = io.BytesIO(data[HEADER_SIZE:])
        try:
            record = cast(Record, schemaless_reader(body, writer, None if reader is writer else reader))
        except Exception as exc:  # truncated or corrupt bodies surface as many exception types
            raise CodecError("undecodable", f"corrupt {_short(name)} body: {exc!r}") from None
        if body.tell() != len(data) - HEADER_SIZE:
            raise CodecError("undecodable", f"{len(data) - HEADER_SIZE - body.tell()} trailing bytes after the record")
        return record

    def decode_image_event(self, data: bytes) -> Record:
        """Decode an images-topic payload: Avro single-object, or a JSON object with the same fields."""
        if isinstance(data, bytes | bytearray) and bytes(data[:2]) == MAGIC:
            record = self.decode(bytes(data), "ImageEvent")
        else:
            record = image_event_from_json(data)
        return check_image_event(record)


def image_event_from_json(data: bytes | str) -> Record:
    """Build an ImageEvent from JSON (so a user with only kcat can produce). Strict about types."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CodecError("undecodable", f"payload is neither Avro nor JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CodecError("invalid_json", f"expected a JSON object, got {type(obj).__name__}")
    try:  # json.loads accepts lone surrogate escapes such as "\\ud800"; no event can carry them
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise CodecError("invalid_field", "JSON strings must be valid Unicode (lone surrogate escape)") from None
    unknown = set(obj) - {f["name"] for f in schemas.schema_json("ImageEvent")["fields"]}
    if unknown:
        raise CodecError("invalid_field", f"unknown field(s) {', '.join(sorted(unknown))}")
    for required in ("image_id", "uri"):
        if required not in obj:
            raise CodecError("missing_field", f"ImageEvent JSON is missing {required!r}")
    record: Record = {
        "image_id": obj["image_id"],
        "uri": obj["uri"],
        "source": obj.get("source", "unknown"),
        "captured_at": parse_timestamp(obj.get("captured_at")),
        "content_type": obj.get("content_type"),
        "sha256": obj.get("sha256"),
        "width": obj.get("width"),
        "height": obj.get("height"),
        "metadata": _string_map(obj.get("metadata") or {}),
    }
    try:
        validate(record, schemas.load("ImageEvent"), raise_errors=True)
    except Exception as exc:
        raise CodecError("invalid_field", f"invalid ImageEvent JSON: {exc}") from None
    return record


def check_image_event(record: Record) -> Record:
    """Semantic checks Avro types cannot express."""
    if not isinstance(record.get("image_id"), str) or not record["image_id"].strip():
        raise CodecError("missing_field", "ImageEvent has an empty image_id")
    if not isinstance(record.get("uri"), str) or "://" not in record["uri"]:
        raise CodecError("invalid_field", f"ImageEvent uri {record.get('uri')!r} is not a URI (s3://, r2://, file://)")
    return record


def parse_timestamp(value: Any) -> datetime:
    """Milliseconds since the epoch or an ISO-8601 string -> aware UTC datetime; None -> now."""
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, bool):
        raise CodecError("invalid_field", "captured_at must be epoch milliseconds or an ISO-8601 string")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise CodecError("invalid_field", "captured_at must be finite")
        try:
            return datetime.fromtimestamp(value / 1000.0, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise CodecError("invalid_field", f"captured_at out of range: {exc}") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise CodecError("invalid_field", f"captured_at {value!r} is not ISO-8601") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise CodecError("invalid_field", "captured_at must be epoch milliseconds or an ISO-8601 string")


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise CodecError("invalid_field", "metadata must be a JSON object")
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, dict | list) or item is None:
            raise CodecError("invalid_field", f"metadata[{key!r}] must be a string or a number")
        out[str(key)] = item if isinstance(item, str) else json.dumps(item)
    return out


def to_jsonable(value: Any) -> Any:
    """Event -> JSON-friendly value: datetimes as ISO-8601 UTC, bytes as base64, NaN/inf as null."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or Infinity
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def to_json_line(record: Mapping[str, Any]) -> str:
    """One event as one compact JSON line."""
    return json.dumps(to_jsonable(dict(record)), separators=(",", ":"), ensure_ascii=False)


def _short(name: str) -> str:
    return name.removeprefix(schemas.NAMESPACE + ".")


#: Process-wide codec; stateless apart from its schema table.
codec = Codec()
