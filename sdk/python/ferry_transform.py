"""Ferry's transform SDK for Python, on top of the bindings componentize-py
generates from Ferry's WIT (`wit_world`).

A transform is a class named `Transformer` in the app module (componentize-py
looks for the class named after the exported interface) that subclasses
`Transform` and answers each record:

    import ferry_transform as ferry

    class Transformer(ferry.Transform):
        def process(self, record: ferry.Record) -> ferry.Outcome:
            reading = record.json()
            reading["seen"] = True
            return ferry.emit(reading).to_collection("readings")

- `setup(config)` receives the pipeline's `config` table as a dict; raise to
  reject it, and the message becomes the rejection Ferry reports.
- `process(record)` answers one record; override `process_batch(records)`
  instead to see the whole batch. An exception raised for one record fails
  that record alone, with the exception as its reason (it goes to the
  dead-letter destination); the rest of the batch goes on.
- Outcomes: `emit(value)` (a dict or list becomes JSON, a str text, bytes
  binary), `emit_raw_json(bytes)`, `emit_bson(bytes)`, `drop()`, `fail(reason)`;
  an emitted output can be sent `.to_collection(name)`, written with
  `.upsert_by(*fields)`, `.replace_by(*fields)` or `.delete_by(*fields)`, and
  given a `.key(...)` and `.header(name, value)`. `a.and_(b)` emits both.
- Extended JSON: `date(datetime)` writes a BSON date as `{"$date": ...}`,
  `read_date(value)` reads one back; `int64(n)` / `read_int64(value)` do the
  same for an Int64 (`{"$numberLong": "7"}`, as change events carry them);
  `object_id(hex)` and `decimal128(text)` for those types.
- Logging onto Ferry's log: `log.info("message", key=value)` (also `trace`,
  `debug`, `warn`, `error`).

Instances may be replaced between batches (after a trap, or once their memory
passes the pipeline's `recycle_memory_above`), so keep no state that must
outlive a batch.
"""

import json
import re
from datetime import datetime, timezone

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import logging as _logging
from wit_world.imports.types import (
    Encoding,
    Header,
    Origin_Iggy,
    Origin_Mongodb,
    Outcome_Drop,
    Outcome_Emit,
    Outcome_EmitMany,
    Outcome_Fail,
    Output,
    Write_Delete,
    Write_Insert,
    Write_Replace,
    Write_Upsert,
)

__all__ = [
    "Encoding",
    "Outcome",
    "Record",
    "Transform",
    "date",
    "decimal128",
    "drop",
    "emit",
    "emit_bson",
    "emit_raw_json",
    "fail",
    "int64",
    "log",
    "object_id",
    "read_date",
    "read_int64",
]


class Record:
    """One record of a batch: its payload, encoding, key, headers and origin."""

    __slots__ = ("_wit",)

    def __init__(self, wit_record):
        self._wit = wit_record

    @property
    def payload(self) -> bytes:
        return self._wit.payload

    @property
    def encoding(self) -> Encoding:
        return self._wit.encoding

    def json(self):
        """The payload parsed as JSON (relaxed Extended JSON for BSON
        types); a ValueError says why it is not."""
        try:
            return json.loads(self._wit.payload)
        except UnicodeDecodeError as error:
            raise ValueError(f"payload is not UTF-8: {error}") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"payload is not JSON: {error}") from None

    def text(self) -> str:
        """The payload as UTF-8 text."""
        try:
            return self._wit.payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"payload is not UTF-8: {error}") from None

    @property
    def key(self):
        """The record's key as bytes, or None."""
        return self._wit.key

    @property
    def headers(self) -> dict:
        """The record's headers, by name."""
        return {header.name: header.value for header in self._wit.headers or ()}

    def header(self, name: str):
        """One header's value, or None."""
        for header in self._wit.headers or ():
            if header.name == name:
                return header.value
        return None

    @property
    def timestamp_micros(self) -> int:
        return self._wit.timestamp

    @property
    def change(self):
        """The MongoDB change (namespace, operation, document key, cluster
        time) this record came from, or None."""
        origin = self._wit.origin
        return origin.value if isinstance(origin, Origin_Mongodb) else None

    @property
    def iggy(self):
        """The Iggy position (partition, offset, message id, timestamp) this
        record came from, or None."""
        origin = self._wit.origin
        return origin.value if isinstance(origin, Origin_Iggy) else None


class Outcome:
    """What becomes of one record: outputs to emit, a drop, or a failure."""

    __slots__ = ("outputs", "failure")

    def __init__(self, outputs, failure=None):
        self.outputs = outputs
        self.failure = failure

    def _last(self) -> Output:
        if not self.outputs:
            raise ValueError("only an emitted output can be given a collection, write, key or header")
        return self.outputs[-1]

    def to_collection(self, name: str) -> "Outcome":
        """Writes the (last) output to collection `name`."""
        self._last().collection = name
        return self

    def insert(self) -> "Outcome":
        self._last().write = Write_Insert()
        return self

    def upsert_by(self, *fields: str) -> "Outcome":
        """Upserts the document, matched on `fields`."""
        self._last().write = Write_Upsert(list(fields))
        return self

    def replace_by(self, *fields: str) -> "Outcome":
        """Replaces the document matched on `fields`, or inserts it."""
        self._last().write = Write_Replace(list(fields))
        return self

    def delete_by(self, *fields: str) -> "Outcome":
        """Deletes the document matched on `fields`."""
        self._last().write = Write_Delete(list(fields))
        return self

    def key(self, key) -> "Outcome":
        """The output's message key (Iggy), as str or bytes."""
        self._last().key = key.encode() if isinstance(key, str) else bytes(key)
        return self

    def header(self, name: str, value: str) -> "Outcome":
        self._last().headers.append(Header(name, value))
        return self

    def and_(self, other: "Outcome") -> "Outcome":
        """Emits this outcome's outputs and then `other`'s."""
        if self.failure is not None or other.failure is not None:
            raise ValueError("a failed outcome cannot be combined")
        return Outcome(self.outputs + other.outputs)

    def _to_wit(self):
        if self.failure is not None:
            return Outcome_Fail(self.failure)
        if not self.outputs:
            return _DROP
        if len(self.outputs) == 1:
            return Outcome_Emit(self.outputs[0])
        return Outcome_EmitMany(self.outputs)


_DROP = Outcome_Drop()
_COMPACT = (",", ":")


def _output(payload: bytes, encoding: Encoding) -> Outcome:
    return Outcome([Output(payload, encoding, None, None, None, [])])


def emit(value) -> Outcome:
    """Emits `value`: a dict or list as JSON, a str as text, bytes as binary."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _output(bytes(value), Encoding.BINARY)
    if isinstance(value, str):
        return _output(value.encode(), Encoding.TEXT)
    return _output(json.dumps(value, separators=_COMPACT, ensure_ascii=False).encode(), Encoding.JSON)


def emit_raw_json(payload: bytes) -> Outcome:
    """Emits bytes that already are JSON, unparsed."""
    return _output(bytes(payload), Encoding.JSON)


def emit_bson(document: bytes) -> Outcome:
    """Emits an encoded BSON document."""
    return _output(bytes(document), Encoding.BSON)


def drop() -> Outcome:
    """Drops the record: nothing is written, nothing dead-lettered."""
    return Outcome([])


def fail(reason) -> Outcome:
    """Fails the record: it goes to the dead-letter destination with `reason`."""
    return Outcome([], str(reason))


class Transform(exports.Transformer):
    """The base of a transform; see the module's documentation."""

    # componentize-py makes a new object of the class for every call it
    # receives, so the one `setup` ran on is kept here and answers every
    # batch: what `setup` stores on `self`, `process` finds.
    _configured = None

    def setup(self, config: dict) -> None:
        """Receives the pipeline's `config` table; raise to reject it."""

    def process(self, record: Record) -> Outcome:
        raise NotImplementedError("a transform overrides process(record) or process_batch(records)")

    def process_batch(self, records: list) -> list:
        """One outcome per record, in order. An exception fails its record."""
        outcomes = []
        for record in records:
            try:
                outcomes.append(self.process(record))
            except Exception as error:  # noqa: BLE001 - the record's reason
                outcomes.append(fail(_reason(error)))
        return outcomes

    # The WIT functions componentize-py calls.

    def configure(self, config: str) -> None:
        try:
            self.setup(json.loads(config))
        except Exception as error:  # noqa: BLE001 - the rejection message
            raise Err(_reason(error)) from None
        Transform._configured = self

    def transform(self, batch) -> list:
        transform = Transform._configured or self
        outcomes = transform.process_batch([Record(record) for record in batch.records])
        if len(outcomes) != len(batch.records):
            raise Err(f"process_batch answered {len(outcomes)} outcomes for {len(batch.records)} records")
        return [outcome._to_wit() for outcome in outcomes]


def _reason(error: Exception) -> str:
    # A ValueError's message says it all; other types name themselves too.
    return str(error) if type(error) is ValueError else f"{type(error).__name__}: {error}"


# Extended JSON


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time such as `2026-11-26T03:00:00Z`; a ValueError says
    why `text` is not one."""
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 time")
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))


def date(value: datetime) -> dict:
    """A BSON date in relaxed Extended JSON, to millisecond precision."""
    utc = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return {"$date": utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"}


def read_date(value) -> datetime:
    """A BSON date written as relaxed or canonical Extended JSON."""
    inner = value.get("$date") if isinstance(value, dict) else None
    if isinstance(inner, str):
        return parse_rfc3339(inner)
    if isinstance(inner, dict) and isinstance(inner.get("$numberLong"), str):
        return datetime.fromtimestamp(int(inner["$numberLong"]) / 1000, timezone.utc)
    raise ValueError(f"{value!r} is not an Extended JSON date")


def int64(value: int) -> dict:
    """An Int64 in canonical Extended JSON: a bare number that fits 32 bits
    would be stored as an Int32."""
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
        raise ValueError(f"{value!r} is not an Int64")
    return {"$numberLong": str(value)}


def read_int64(value) -> int:
    """An Int64 as Ferry hands it over (`{"$numberLong": "7"}`), or a bare
    integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, dict) and isinstance(value.get("$numberLong"), str):
        return int(value["$numberLong"])
    raise ValueError(f"{value!r} is not an Int64")


def object_id(hex_text: str) -> dict:
    if not re.fullmatch(r"[0-9a-fA-F]{24}", hex_text):
        raise ValueError(f"{hex_text!r} is not an ObjectId: 24 hex digits are needed")
    return {"$oid": hex_text.lower()}


def decimal128(text: str) -> dict:
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(Infinity|inf)|NaN", text):
        raise ValueError(f"{text!r} is not a Decimal128")
    return {"$numberDecimal": text}


# Logging


class _Log:
    """Lines onto Ferry's log, tagged with the transform's name."""

    def _line(self, level, message: str, fields: dict) -> None:
        _logging.log(level, message, [_logging.Field(key, str(value)) for key, value in fields.items()])

    def trace(self, message: str, **fields) -> None:
        self._line(_logging.Level.TRACE, message, fields)

    def debug(self, message: str, **fields) -> None:
        self._line(_logging.Level.DEBUG, message, fields)

    def info(self, message: str, **fields) -> None:
        self._line(_logging.Level.INFO, message, fields)

    def warn(self, message: str, **fields) -> None:
        self._line(_logging.Level.WARN, message, fields)

    def error(self, message: str, **fields) -> None:
        self._line(_logging.Level.ERROR, message, fields)


log = _Log()
