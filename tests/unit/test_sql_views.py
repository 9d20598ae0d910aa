"""DuckDB views derived from template.yaml's Glue tables (local/sql), over what the real download
handler writes to S3 (moto): every value of a bill read back as it was sent, whatever the bill's
encoding, BOM or header row, with quotes, commas, backslashes and non-ASCII text in it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from ccfs.columns import CDR_COLUMNS, RECORD_COLUMNS
from exporter import aws as exporter_aws
from local.sql.duck import connect, download, duck_type, view_sql
from local.sql.glue import GlueTemplateError, json_fields, load_glue_tables
from local.sql.queries import SqlAnswers, differences
from local.stack.report import sql_summary
from tests.conftest import load_handler
from tests.fakes.ccfs import FakeCcfs
from tests.helpers import fast_clients, seed_job
from tests.unit.bill_helpers import BILL, CDR_HEADER, PREFIX, RID, bill_event, cdr_row, csv_bytes, idx_row, zip_bytes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tables() -> Any:
    return load_glue_tables(ROOT / "template.yaml", "bucket")


def test_a_bill_reads_back_value_for_value_through_the_template_views(aws, monkeypatch, lambda_context, tmp_path):
    fast_clients(monkeypatch)
    handler = load_handler("download")
    seed_job(aws, "READY", tenant="_all")
    cdr = [
        cdr_row("acct001", "1530497000-101", "2018-07-02 09:15:02", "-1"),
        cdr_row("acct001", "1530497000-102", "2018-07-02 10:00:00", "1"),
    ]
    cdr[0][CDR_COLUMNS.index("callee_no")] = '40,0"8\\x'  # a comma, a quote and a backslash
    cdr[0][-1] = "客户挂机"  # the extra trailing column, GB18030 in the bill
    index = [idx_row("", "1530497000-101", "2018-07-02 09:15:02", "/10/1/record/100/0903379.wav")]
    assert "\\" in index[0][RECORD_COLUMNS.index("original_file_name")]  # a Windows-style path
    bill = zip_bytes(
        {
            f"{PREFIX}_call_1.csv": csv_bytes(CDR_HEADER, cdr).decode().encode("gb18030"),
            f"{PREFIX}_record_1.csv": b"\xef\xbb\xbf" + csv_bytes(None, index),  # BOM, no header row
        }
    )
    monkeypatch.setattr(handler, "ccfs_client", lambda settings, tenant: FakeCcfs(bill))
    body = {"responseId": RID, "billFileName": BILL, "tenant": "_all"}
    assert handler.lambda_handler(bill_event(aws, body), lambda_context) == {"batchItemFailures": []}

    derived = load_glue_tables(ROOT / "template.yaml", aws.bucket)
    assert download(exporter_aws.client("s3"), aws.bucket, derived, tmp_path) == 3  # two CSVs and a manifest
    con = connect(derived, tmp_path)
    documented = ", ".join(f'"{c}"' for c in derived["cdr"].column_names)
    rows = con.sql(f"SELECT {documented}, account_id, call_date FROM cdr ORDER BY call_id").fetchall()
    assert rows == [(*row[: len(CDR_COLUMNS)], "acct001", "2018-07-02") for row in cdr]
    documented = ", ".join(f'"{c}"' for c in derived["recording_index"].column_names)
    rows = con.sql(f"SELECT {documented}, account_id, call_date FROM recording_index").fetchall()
    assert rows == [(*index[0], "_all", "2018-07-02")]  # no account_id in the row: the _all partition
    ((rid, status, counts, cdr_keys),) = con.sql("SELECT response_id, status, counts, cdr FROM manifests").fetchall()
    assert (rid, status, counts["cdr_rows"], counts["index_rows"]) == (RID, "DOWNLOADING", 2, 1)
    assert cdr_keys == [{"key": f"cdr/account_id=acct001/call_date=2018-07-02/{RID}-1.csv", "rows": 2}]
    written = json.loads((tmp_path / "manifests" / f"{RID}.json").read_text())
    assert set(written) <= set(json_fields(derived["manifests"]).values())  # no manifest field without a column


def test_tables_without_objects_are_empty_not_an_error(tables, tmp_path):
    con = connect(tables, tmp_path)
    for name in tables:
        assert con.sql(f'SELECT count(*) FROM "{name}"').fetchone() == (0,)
    assert "account_id" in [d[0] for d in con.sql("SELECT * FROM cdr").description]


@pytest.mark.parametrize(
    ("hive", "duck"),
    [
        ("string", "VARCHAR"),
        ("date", "DATE"),
        ("array<string>", "VARCHAR[]"),
        ("struct<key:string,rows:bigint>", 'STRUCT("key" VARCHAR, "rows" BIGINT)'),
        ("array<struct<a:boolean,b:array<int>>>", 'STRUCT("a" BOOLEAN, "b" INTEGER[])[]'),
    ],
)
def test_glue_types_map_to_duckdb_types(hive, duck):
    assert duck_type(hive) == duck


@pytest.mark.parametrize("bad", ["map<string,string>", "array<string", "struct<a>", "decimal(10,2)"])
def test_a_glue_type_it_cannot_map_is_refused_by_name(bad):
    with pytest.raises(GlueTemplateError, match="Glue type"):
        duck_type(bad)


def test_a_table_the_local_engine_would_read_differently_is_refused(tables, tmp_path):
    cdr = tables["cdr"]
    backslash = dataclasses.replace(cdr, serde_parameters={**cdr.serde_parameters, "escapeChar": "\\"})
    with pytest.raises(GlueTemplateError, match="escapeChar"):
        view_sql(backslash, tmp_path)
    flat = dataclasses.replace(cdr, location_template="s3://bucket/cdr/${account_id}/${call_date}/")
    with pytest.raises(GlueTemplateError, match="Hive-style"):
        view_sql(flat, tmp_path)
    other = dataclasses.replace(cdr, serde="org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe")
    with pytest.raises(GlueTemplateError, match="LazySimpleSerDe"):
        view_sql(other, tmp_path)


def test_differences_name_each_answer_that_is_not_the_truth():
    truth = SqlAnswers(
        calls={("acct001", "2026-12-05"): 3}, recordings_per_call={("acct001", "c1"): 2}, bytes={"acct001": (2, 10)}
    )
    assert differences(truth, dataclasses.replace(truth)) == []
    wrong = SqlAnswers(
        calls={("acct001", "2026-12-05"): 3, ("acct001", "2026-12-06"): 1},
        recordings_per_call={("acct001", "c1"): 1},
        bytes={"acct001": (2, 9)},
    )
    assert differences(wrong, truth) == [
        "calls ('acct001', '2026-12-06'): SQL 1, truth None",
        "recordings_per_call ('acct001', 'c1'): SQL 1, truth 2",
        "bytes acct001: SQL (2, 9), truth (2, 10)",
    ]


def test_the_demo_reports_a_failing_sql_step_and_fails():
    class NoBucket:
        config = type("Config", (), {"template": ROOT / "template.yaml"})()
        names = type("Names", (), {"bucket": "missing"})()

        def client(self, service):
            raise RuntimeError("moto is not running")

    summary = sql_summary(NoBucket())
    assert not summary.ok
    assert summary.lines == ["SQL FAILED: RuntimeError: moto is not running"]
