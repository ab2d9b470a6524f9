"""Test-only: exercises every part of the Python SDK, one command per
record's payload (see `tests/tests/sdks.rs`, which the JavaScript probe
answers alike):

route, many, insert, replace, delete, dates, ids, int64, bad-id, log, drop,
fail:WHY, raise. `configure` rejects a config with a `reject` string and
keeps its `prefix` for `route`.
"""

import ferry_transform as ferry


class Transformer(ferry.Transform):
    def setup(self, config: dict) -> None:
        if "reject" in config:
            raise ValueError(config["reject"])
        self.prefix = config.get("prefix", "")

    def process(self, record: ferry.Record) -> ferry.Outcome:
        command, _, argument = record.text().partition(":")
        if command == "route":
            seen = {"prefix": self.prefix, "key": record.key.decode(), "source": record.header("source"),
                    "headers": record.headers, "encoding": record.encoding.name.lower()}
            return ferry.emit(seen).to_collection("routed").upsert_by("a", "b").key("k1").header("h", "v")
        if command == "many":
            return ferry.emit({"n": 1}).and_(ferry.emit("text")).and_(ferry.emit(b"\x00\x01"))
        if command == "insert":
            return ferry.emit({"_id": 1}).insert()
        if command == "replace":
            return ferry.emit({"_id": 1}).replace_by("_id")
        if command == "delete":
            return ferry.emit({"_id": 1}).delete_by("_id")
        if command == "dates":
            relaxed = ferry.read_date({"$date": "2026-11-26T03:00:00.5+01:00"})
            canonical = ferry.read_date({"$date": {"$numberLong": "1795662000000"}})
            return ferry.emit({"relaxed": ferry.date(relaxed), "canonical": ferry.date(canonical)})
        if command == "ids":
            return ferry.emit({"id": ferry.object_id("65F1A2B3C4D5E6F708192A3B"), "price": ferry.decimal128("1.10")})
        if command == "int64":
            return ferry.emit({"small": ferry.int64(7), "read": ferry.read_int64({"$numberLong": "9000000000"}) + ferry.read_int64(1)})
        if command == "bad-id":
            return ferry.emit(ferry.object_id("xyz"))
        if command == "log":
            ferry.log.info("hello from python", n=1)
            return ferry.drop()
        if command == "drop":
            return ferry.drop()
        if command == "fail":
            return ferry.fail(argument)
        if command == "raise":
            raise KeyError("missing")
        return ferry.fail(f"unknown command {command!r}")
