"""template.yaml's Glue tables against the code that writes the files they describe.

The CSV tables' columns must be ``ccfs.columns`` (what the exporter writes first, in order, as the
header row) and the manifest's ``counts`` must be ``exporter.jobs.manifest.COUNTERS``; the layout
must be projected over account_id and call_date like ``exporter.layout`` writes keys.
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ccfs.columns import CDR_COLUMNS, RECORD_COLUMNS
from exporter import layout
from exporter.jobs.manifest import COUNTERS
from local.sql.glue import column_problems, glue_tables
from local.stack.cfn import load_template

ROOT = Path(__file__).resolve().parents[2]
CSV_TABLES = {"cdr": CDR_COLUMNS, "recording_index": RECORD_COLUMNS}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def test_glue_columns_are_the_columns_the_exporter_writes(template):
    tables = glue_tables(template, "bucket")
    assert column_problems(tables, CSV_TABLES, COUNTERS) == []
    # the row's own account_id is kept, under a name that does not clash with the partition key
    assert tables["cdr"].column_names[1] == "row_account_id" and CDR_COLUMNS[1] == "account_id"


def _columns(template: dict[str, Any], lid: str) -> list[dict[str, str]]:
    return template["Resources"][lid]["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]


def _drop_last(t: dict[str, Any]) -> None:
    _columns(t, "CdrTable").pop()


def _swap(t: dict[str, Any]) -> None:
    cols = _columns(t, "RecordingIndexTable")
    cols[3], cols[4] = cols[4], cols[3]


def _rename(t: dict[str, Any]) -> None:
    _columns(t, "CdrTable")[4]["Name"] = "callid"


def _typed(t: dict[str, Any]) -> None:
    _columns(t, "CdrTable")[7]["Type"] = "timestamp"


def _extra(t: dict[str, Any]) -> None:
    _columns(t, "RecordingIndexTable").append({"Name": "leave_reason", "Type": "string"})


def _counts(t: dict[str, Any]) -> None:
    counts = next(c for c in _columns(t, "ManifestTable") if c["Name"] == "counts")
    counts["Type"] = counts["Type"].replace("bad_rows:bigint,", "")


def _partition(t: dict[str, Any]) -> None:
    t["Resources"]["CdrTable"]["Properties"]["TableInput"]["PartitionKeys"][0]["Name"] = "tenant"


@pytest.mark.parametrize("mutate", [_drop_last, _swap, _rename, _typed, _extra, _counts, _partition])
def test_a_divergence_from_the_exporters_lists_is_caught(template, mutate):
    changed = copy.deepcopy(template)
    mutate(changed)
    assert column_problems(glue_tables(changed, "bucket"), CSV_TABLES, COUNTERS) != []


def test_a_new_column_in_ccfs_columns_is_caught(template):
    tables = glue_tables(template, "bucket")
    grown = {"cdr": (*CDR_COLUMNS, "leave_reason"), "recording_index": RECORD_COLUMNS}
    (problem,) = column_problems(tables, grown, COUNTERS)
    assert "Glue table cdr" in problem and "leave_reason" in problem


def test_projection_locations_are_the_layouts_keys(template):
    """The projected location of a partition is the prefix exporter.layout writes its objects under."""
    tables = glue_tables(template, "bucket")
    day = date(2026, 12, 5)
    for name, key_of in (("cdr", layout.cdr_key), ("recording_index", layout.index_key)):
        table = tables[name]
        assert table.parameters["projection.enabled"] == "true"
        assert table.parameters["projection.account_id.type"] == "injected"
        assert table.parameters["projection.call_date.type"] == "date"
        assert table.parameters["projection.call_date.format"] == "yyyy-MM-dd"
        assert table.parameters["skip.header.line.count"] == "1"  # the exporter always writes the header row
        location = table.location_template or ""
        projected = location.replace("${account_id}", "acct001").replace("${call_date}", day.isoformat())
        key = key_of("acct001", day, "rid", 0)
        assert f"s3://bucket/{key}".startswith(projected) and key.removeprefix(projected[len("s3://bucket/") :]) == (
            "rid-0.csv"
        )
    manifests = tables["manifests"]
    assert f"s3://bucket/{layout.manifest_key('rid')}".startswith(manifests.location)


def test_database_is_an_output_and_no_crawler_is_needed(template):
    resources = template["Resources"]
    assert template["Outputs"]["GlueDatabaseName"]["Value"] == {"Ref": "ExportDatabase"}
    assert resources["ExportDatabase"]["Type"] == "AWS::Glue::Database"
    tables = [r for r in resources.values() if r["Type"] == "AWS::Glue::Table"]
    assert len(tables) == 3
    assert all(t["Properties"]["DatabaseName"] == {"Ref": "ExportDatabase"} for t in tables)
    assert not [r for r in resources.values() if r["Type"] in ("AWS::Glue::Crawler", "AWS::Glue::Partition")]
