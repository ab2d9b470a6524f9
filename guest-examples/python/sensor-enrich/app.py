"""Enriches sensor readings such as
`{"sensor_id":"s1","temp":22.5,"ts":"2026-11-26T03:00:00Z"}`, as the Rust
`sensor-enrich` example does:

- adds `temp_f` (temp x 9 / 5 + 32, rounded to two decimals);
- turns `ts` into a BSON date (`{"$date": ...}` in relaxed Extended JSON);
- sends the reading to the `readings` collection.

A reading without a numeric `temp` is dropped. A payload that is not a JSON
object, or whose `ts` is not an RFC 3339 time, fails with a reason and goes
to the dead-letter destination.
"""

import math

import ferry_transform as ferry

COLLECTION = "readings"


def to_fahrenheit(celsius: float) -> float:
    # Rounded half away from zero, as Rust's f64::round and the Rust example.
    scaled = (celsius * 9 / 5 + 32) * 100
    return math.copysign(math.floor(abs(scaled) + 0.5), scaled) / 100


class Transformer(ferry.Transform):
    """componentize-py exports the class named after the interface."""

    def process(self, record: ferry.Record) -> ferry.Outcome:
        try:
            reading = record.json()
        except ValueError as error:
            return ferry.fail(error)
        if not isinstance(reading, dict):
            return ferry.fail(f"payload is not a JSON object: found {type(reading).__name__}")
        temp = reading.get("temp")
        if isinstance(temp, bool) or not isinstance(temp, (int, float)):
            return ferry.drop()
        if isinstance(reading.get("ts"), str):
            try:
                reading["ts"] = ferry.date(ferry.parse_rfc3339(reading["ts"]))
            except ValueError as error:
                return ferry.fail(f"ts {error}")
        reading.pop("temp_f", None)
        reading["temp_f"] = to_fahrenheit(temp)
        return ferry.emit(reading).to_collection(COLLECTION)
