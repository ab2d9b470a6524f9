// Enriches sensor readings such as
// `{"sensor_id":"s1","temp":22.5,"ts":"2026-11-26T03:00:00Z"}`, as the Rust
// `sensor-enrich` example does:
//
// - adds `temp_f` (temp x 9 / 5 + 32, rounded to two decimals);
// - turns `ts` into a BSON date (`{"$date": ...}` in relaxed Extended JSON);
// - sends the reading to the `readings` collection.
//
// A reading without a numeric `temp` is dropped. A payload that is not a JSON
// object, or whose `ts` is not an RFC 3339 time, fails with a reason and goes
// to the dead-letter destination.

import * as ferry from '../../../sdk/js/ferry-transform.js';

const COLLECTION = 'readings';

// Rounded half away from zero, as Rust's f64::round and the Rust example.
function toFahrenheit(celsius) {
  const scaled = (celsius * 9 / 5 + 32) * 100;
  return (Math.sign(scaled) * Math.round(Math.abs(scaled))) / 100;
}

export const transformer = ferry.transform({
  process(record) {
    const reading = record.json();
    if (reading === null || typeof reading !== 'object' || Array.isArray(reading)) {
      return ferry.fail(`payload is not a JSON object: found ${JSON.stringify(reading)}`);
    }
    if (typeof reading.temp !== 'number') {
      return ferry.drop();
    }
    if (typeof reading.ts === 'string') {
      try {
        reading.ts = ferry.date(ferry.parseRfc3339(reading.ts));
      } catch (error) {
        return ferry.fail(`ts ${error.message}`);
      }
    }
    delete reading.temp_f;
    reading.temp_f = toFahrenheit(reading.temp);
    return ferry.emit(reading).toCollection(COLLECTION);
  },
});
