"""{{name}}: a Ferry transform.

Reads sensor readings such as `{"sensor_id":"s1","temp":21.5,"ts":"2026-11-26T03:00:00Z"}`,
adds the temperature in Fahrenheit, stores `ts` as a BSON date and sends the
reading to the configured collection. A reading without a temperature is
dropped; a payload that is not a reading fails, and goes to the dead-letter
topic with the reason.
"""

import ferry_transform as ferry


class Transformer(ferry.Transform):
    """componentize-py exports the class named after the WIT interface."""

    def setup(self, config: dict) -> None:
        # The pipeline file's [transforms.config] table.
        unknown = sorted(set(config) - {"collection"})
        if unknown:
            raise ValueError(f"unknown config field {unknown[0]!r}, expected `collection`")
        self.collection = config.get("collection", "readings")

    def process(self, record: ferry.Record) -> ferry.Outcome:
        reading = record.json()
        if not isinstance(reading, dict):
            return ferry.fail("a reading is a JSON object")
        temp_c = reading.get("temp")
        if temp_c is None:
            return ferry.drop()
        enriched = {
            "sensor_id": reading["sensor_id"],
            "temp_c": float(temp_c),
            "temp_f": round(temp_c * 9 / 5 + 32, 2),
            "ts": ferry.date(ferry.parse_rfc3339(reading["ts"])),
        }
        return ferry.emit(enriched).to_collection(self.collection)
