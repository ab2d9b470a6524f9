// {{name}}: a Ferry transform.
//
// Reads sensor readings such as `{"sensor_id":"s1","temp":21.5,"ts":"2026-11-26T03:00:00Z"}`,
// adds the temperature in Fahrenheit, stores `ts` as a BSON date and sends
// the reading to the configured collection. A reading without a temperature
// is dropped; a payload that is not a reading fails, and goes to the
// dead-letter topic with the reason.

import * as ferry from './ferry-transform.js';

let collection = 'readings';

export const transformer = ferry.transform({
  // The pipeline file's [transforms.config] table.
  setup(config) {
    const unknown = Object.keys(config).filter((key) => key !== 'collection');
    if (unknown.length > 0) {
      throw new Error(`unknown config field "${unknown[0]}", expected \`collection\``);
    }
    collection = config.collection ?? 'readings';
  },

  process(record) {
    const reading = record.json();
    if (reading === null || typeof reading !== 'object' || Array.isArray(reading)) {
      return ferry.fail('a reading is a JSON object');
    }
    if (reading.temp === undefined || reading.temp === null) {
      return ferry.drop();
    }
    const enriched = {
      sensor_id: reading.sensor_id,
      temp_c: reading.temp,
      temp_f: Math.round((reading.temp * 9 / 5 + 32) * 100) / 100,
      ts: ferry.date(ferry.parseRfc3339(reading.ts)),
    };
    return ferry.emit(enriched).toCollection(collection);
  },
});
