"""--mapping: fields read as an Elasticsearch index maps them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from app.engine.mapping import Mapping, version_key
from app.errors import ConfigError


def test_versions_order_as_elasticsearchs_version_type() -> None:
    ordered = ["1.2.4-SNAPSHOT", "1.2.4", "1.5.0", "1.11.3", "bad"]
    assert sorted(ordered, key=version_key) == ordered  # type: ignore[arg-type, return-value]


def test_aliases_and_null_values_leave_the_record_as_received(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    path.write_bytes(
        orjson.dumps(
            {
                "idx": {
                    "mappings": {
                        "properties": {
                            "event_type": {"type": "keyword"},
                            "event": {
                                "properties": {"category": {"type": "alias", "path": "event_type"}}
                            },
                            "f": {"type": "keyword", "null_value": "NULL"},
                            "v": {"type": "version"},
                        }
                    }
                }
            }
        )
    )
    mapping = Mapping.load(path)
    assert mapping.version_fields == {"v"}
    doc = {"event_type": "process", "f": None}
    seen = mapping.apply(doc)
    assert seen == {"event_type": "process", "f": "NULL", "event": {"category": "process"}}
    assert doc == {"event_type": "process", "f": None}
    own = {"event_type": "process", "event": {"category": "file"}}
    assert mapping.apply(own)["event"]["category"] == "file"  # the record's own field wins


def test_a_file_that_is_no_mapping_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"settings": {}}')
    with pytest.raises(ConfigError, match="no `properties`"):
        Mapping.load(path)


def test_date_nanos_reads_the_fraction_of_a_millisecond() -> None:
    from app.engine.timestamps import parse_timestamp_ms, parse_timestamp_ns

    assert parse_timestamp_ms("131509374020.000001") == 131509374020
    assert parse_timestamp_ns("131509374020.000001") == 131509374020_000001
    assert (
        parse_timestamp_ns("1974-03-03T02:22:54.294365140Z")
        == parse_timestamp_ms("1974-03-03T02:22:54.294Z") * 1_000_000 + 365_140
    )  # type: ignore[operator]
