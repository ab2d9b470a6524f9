// Test-only: exercises every part of the JavaScript SDK, one command per
// record's payload (see `tests/tests/sdks.rs`, which the Python probe
// answers alike):
//
// route, many, insert, replace, delete, dates, ids, int64, bad-id, log, drop,
// fail:WHY, raise. `configure` rejects a config with a `reject` string and
// keeps its `prefix` for `route`.

import * as ferry from '../../../sdk/js/ferry-transform.js';

let prefix = '';

export const transformer = ferry.transform({
  setup(config) {
    if ('reject' in config) throw new Error(config.reject);
    prefix = config.prefix ?? '';
  },

  process(record) {
    const text = record.text();
    const [command, argument] = text.includes(':') ? [text.slice(0, text.indexOf(':')), text.slice(text.indexOf(':') + 1)] : [text, ''];
    switch (command) {
      case 'route': {
        const seen = {
          prefix,
          key: new TextDecoder().decode(record.key),
          source: record.header('source'),
          headers: record.headers,
          encoding: record.encoding,
        };
        return ferry.emit(seen).toCollection('routed').upsertBy('a', 'b').key('k1').header('h', 'v');
      }
      case 'many':
        return ferry.emit({ n: 1 }).and(ferry.emit('text')).and(ferry.emit(new Uint8Array([0, 1])));
      case 'insert':
        return ferry.emit({ _id: 1 }).insert();
      case 'replace':
        return ferry.emit({ _id: 1 }).replaceBy('_id');
      case 'delete':
        return ferry.emit({ _id: 1 }).deleteBy('_id');
      case 'dates': {
        const relaxed = ferry.readDate({ $date: '2026-11-26T03:00:00.5+01:00' });
        const canonical = ferry.readDate({ $date: { $numberLong: '1795662000000' } });
        return ferry.emit({ relaxed: ferry.date(relaxed), canonical: ferry.date(canonical) });
      }
      case 'ids':
        return ferry.emit({ id: ferry.objectId('65F1A2B3C4D5E6F708192A3B'), price: ferry.decimal128('1.10') });
      case 'int64':
        return ferry.emit({
          small: ferry.int64(7),
          read: Number(ferry.readInt64({ $numberLong: '9000000000' }) + ferry.readInt64(1)),
        });
      case 'bad-id':
        return ferry.emit(ferry.objectId('xyz'));
      case 'log':
        ferry.log.info('hello from javascript', { n: 1 });
        return ferry.drop();
      case 'drop':
        return ferry.drop();
      case 'fail':
        return ferry.fail(argument);
      case 'raise':
        throw new TypeError('missing');
      default:
        return ferry.fail(`unknown command ${command}`);
    }
  },
});
