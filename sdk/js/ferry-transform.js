// Ferry's transform SDK for JavaScript, for components built with
// componentize-js against Ferry's WIT.
//
// A transform module exports `transformer`, made by `transform(...)`:
//
//   import * as ferry from './ferry-transform.js';
//
//   export const transformer = ferry.transform({
//     process(record) {
//       const reading = record.json();
//       reading.seen = true;
//       return ferry.emit(reading).toCollection('readings');
//     },
//   });
//
// - `setup(config)` receives the pipeline's `config` table as an object;
//   throw to reject it, and the message becomes the rejection Ferry reports.
// - `process(record)` answers one record; give `processBatch(records)`
//   instead to see the whole batch. An exception thrown for one record fails
//   that record alone, with the exception's message as its reason (it goes to
//   the dead-letter destination); the rest of the batch goes on.
// - Outcomes: `emit(value)` (an object or array becomes JSON, a string text,
//   a Uint8Array binary), `emitRawJson(bytes)`, `emitBson(bytes)`, `drop()`,
//   `fail(reason)`; an emitted output can be sent `.toCollection(name)`,
//   written with `.upsertBy(...fields)`, `.replaceBy(...)` or `.deleteBy(...)`,
//   and given a `.key(...)` and `.header(name, value)`. `a.and(b)` emits both.
// - Extended JSON: `date(Date)` writes a BSON date as `{"$date": ...}`,
//   `readDate(value)` reads one back; `int64(n)` / `readInt64(value)` for an
//   Int64 (`{"$numberLong": "7"}`, as change events carry them);
//   `objectId(hex)`, `decimal128(text)`.
// - Logging onto Ferry's log: `log.info('message', { key: value })` (also
//   `trace`, `debug`, `warn`, `error`).
//
// Instances may be replaced between batches (after a trap, or once their
// memory passes the pipeline's `recycle_memory_above`), so keep no state that
// must outlive a batch.

import { log as hostLog } from 'ferry:transform/logging@0.1.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** One record of a batch: its payload, encoding, key, headers and origin. */
export class Record {
  constructor(wit) {
    this.wit = wit;
  }

  /** The payload bytes, a Uint8Array. */
  get payload() {
    return this.wit.payload;
  }

  /** `json`, `bson`, `text` or `binary`. */
  get encoding() {
    return this.wit.encoding;
  }

  /** The payload parsed as JSON (relaxed Extended JSON for BSON types). */
  json() {
    const text = this.text();
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new Error(`payload is not JSON: ${error.message}`);
    }
  }

  /** The payload as UTF-8 text. */
  text() {
    try {
      return decoder.decode(this.wit.payload);
    } catch {
      throw new Error('payload is not UTF-8');
    }
  }

  /** The record's key as a Uint8Array, or undefined. */
  get key() {
    return this.wit.key;
  }

  /** One header's value, or undefined. */
  header(name) {
    return (this.wit.headers ?? []).find((header) => header.name === name)?.value;
  }

  /** The record's headers as an object, by name. */
  get headers() {
    return Object.fromEntries((this.wit.headers ?? []).map((header) => [header.name, header.value]));
  }

  get timestampMicros() {
    return this.wit.timestamp;
  }

  /** The MongoDB change (namespace, operation, documentKey, clusterTime)
   * this record came from, or undefined. */
  get change() {
    return this.wit.origin.tag === 'mongodb' ? this.wit.origin.val : undefined;
  }

  /** The Iggy position (partition, offset, messageId, timestamp) this record
   * came from, or undefined. */
  get iggy() {
    return this.wit.origin.tag === 'iggy' ? this.wit.origin.val : undefined;
  }
}

/** What becomes of one record: outputs to emit, a drop, or a failure. */
export class Outcome {
  constructor(outputs, failure) {
    this.outputs = outputs;
    this.failure = failure;
  }

  last() {
    if (this.outputs.length === 0) {
      throw new Error('only an emitted output can be given a collection, write, key or header');
    }
    return this.outputs[this.outputs.length - 1];
  }

  /** Writes the (last) output to collection `name`. */
  toCollection(name) {
    this.last().collection = name;
    return this;
  }

  insert() {
    this.last().write = { tag: 'insert' };
    return this;
  }

  /** Upserts the document, matched on `fields`. */
  upsertBy(...fields) {
    this.last().write = { tag: 'upsert', val: fields };
    return this;
  }

  /** Replaces the document matched on `fields`, or inserts it. */
  replaceBy(...fields) {
    this.last().write = { tag: 'replace', val: fields };
    return this;
  }

  /** Deletes the document matched on `fields`. */
  deleteBy(...fields) {
    this.last().write = { tag: 'delete', val: fields };
    return this;
  }

  /** The output's message key (Iggy), a string or a Uint8Array. */
  key(key) {
    this.last().key = typeof key === 'string' ? encoder.encode(key) : key;
    return this;
  }

  header(name, value) {
    this.last().headers.push({ name, value: String(value) });
    return this;
  }

  /** Emits this outcome's outputs and then `other`'s. */
  and(other) {
    if (this.failure !== undefined || other.failure !== undefined) {
      throw new Error('a failed outcome cannot be combined');
    }
    return new Outcome(this.outputs.concat(other.outputs));
  }

  toWit() {
    if (this.failure !== undefined) return { tag: 'fail', val: this.failure };
    if (this.outputs.length === 0) return DROP;
    if (this.outputs.length === 1) return { tag: 'emit', val: this.outputs[0] };
    return { tag: 'emit-many', val: this.outputs };
  }
}

const DROP = { tag: 'drop' };

function output(payload, encoding) {
  return new Outcome([{ payload, encoding, collection: undefined, write: undefined, key: undefined, headers: [] }]);
}

/** Emits `value`: an object or array as JSON, a string as text, bytes as binary. */
export function emit(value) {
  if (value instanceof Uint8Array) return output(value, 'binary');
  if (typeof value === 'string') return output(encoder.encode(value), 'text');
  return output(encoder.encode(JSON.stringify(value)), 'json');
}

/** Emits bytes that already are JSON, unparsed. */
export function emitRawJson(bytes) {
  return output(bytes, 'json');
}

/** Emits an encoded BSON document. */
export function emitBson(bytes) {
  return output(bytes, 'bson');
}

/** Drops the record: nothing is written, nothing dead-lettered. */
export function drop() {
  return new Outcome([]);
}

/** Fails the record: it goes to the dead-letter destination with `reason`. */
export function fail(reason) {
  return new Outcome([], String(reason instanceof Error ? reason.message : reason));
}

/** The `transformer` export componentize-js binds to Ferry's WIT. */
export function transform(definition) {
  const processBatch =
    definition.processBatch?.bind(definition) ??
    ((records) =>
      records.map((record) => {
        try {
          return definition.process(record);
        } catch (error) {
          return fail(error);
        }
      }));
  return {
    configure(config) {
      // A thrown error becomes the `result`'s error case: the rejection.
      try {
        definition.setup?.(JSON.parse(config));
      } catch (error) {
        throw error instanceof Error ? error.message : String(error);
      }
    },
    transform(batch) {
      const outcomes = processBatch(batch.records.map((record) => new Record(record)));
      if (outcomes.length !== batch.records.length) {
        throw `processBatch answered ${outcomes.length} outcomes for ${batch.records.length} records`;
      }
      return outcomes.map((outcome) => outcome.toWit());
    },
  };
}

// Extended JSON

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time such as `2026-11-26T03:00:00Z`, as a Date. */
export function parseRfc3339(text) {
  const time = typeof text === 'string' && RFC3339.test(text) ? new Date(text) : undefined;
  if (time === undefined || Number.isNaN(time.getTime())) {
    throw new Error(`${JSON.stringify(text)} is not an RFC 3339 time`);
  }
  return time;
}

/** A BSON date in relaxed Extended JSON, to millisecond precision. */
export function date(time) {
  return { $date: time.toISOString() };
}

/** A BSON date written as relaxed or canonical Extended JSON, as a Date. */
export function readDate(value) {
  const inner = value?.$date;
  if (typeof inner === 'string') return parseRfc3339(inner);
  if (typeof inner?.$numberLong === 'string') return new Date(Number(inner.$numberLong));
  throw new Error(`${JSON.stringify(value)} is not an Extended JSON date`);
}

/** An Int64 in canonical Extended JSON (a bare number that fits 32 bits
 * would be stored as an Int32); `value` a BigInt, or a safe integer. */
export function int64(value) {
  if (typeof value === 'bigint' || Number.isSafeInteger(value)) return { $numberLong: String(value) };
  throw new Error(`${String(value)} is not an Int64 (use a BigInt beyond 2^53)`);
}

/** An Int64 as Ferry hands it over (`{"$numberLong": "7"}`) or a bare
 * integer, as a BigInt. */
export function readInt64(value) {
  if (typeof value?.$numberLong === 'string') return BigInt(value.$numberLong);
  if (Number.isInteger(value)) return BigInt(value);
  throw new Error(`${JSON.stringify(value)} is not an Int64`);
}

export function objectId(hex) {
  if (!/^[0-9a-fA-F]{24}$/.test(hex)) throw new Error(`${JSON.stringify(hex)} is not an ObjectId: 24 hex digits are needed`);
  return { $oid: hex.toLowerCase() };
}

export function decimal128(text) {
  if (!/^([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?Infinity|NaN)$/.test(text)) {
    throw new Error(`${JSON.stringify(text)} is not a Decimal128`);
  }
  return { $numberDecimal: text };
}

// Logging

function line(level) {
  return (message, fields = {}) =>
    hostLog(
      level,
      message,
      Object.entries(fields).map(([key, value]) => ({ key, value: String(value) })),
    );
}

/** Lines onto Ferry's log, tagged with the transform's name. */
export const log = {
  trace: line('trace'),
  debug: line('debug'),
  info: line('info'),
  warn: line('warn'),
  error: line('error'),
};
