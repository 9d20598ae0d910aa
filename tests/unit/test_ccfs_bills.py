"""ccfs.bills: reading bill ZIPs built here, byte for byte, including damaged and hostile ones.

Every expected row is built from the data the test wrote and the column names of the protocol
reference (shared/ccfs-protocol.md §4), never from the reader's own output.
"""

from __future__ import annotations

import contextlib
import struct
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccfs import bills
from ccfs.bills import BadRow, BillError, BillFile, BillLimits, CorruptBill, UnsafeEntryName, ZipBomb
from ccfs.columns import CDR_COLUMNS, RECORD_COLUMNS
from tests.unit.bill_rows import (
    CALL_1,
    CDR_NAMES,
    PHONE,
    RECORD_1,
    RECORD_NAMES,
    bills_with_random_content,
    cdr_row,
    mutated_bills,
    record_row,
)
from tests.unit.zipfactory import (
    PREFIX,
    Unseekable,
    central_header_offset,
    csv_bytes,
    data_offset,
    entry_name,
    local_header_offset,
    patch_entry_count,
    patch_sizes,
    patch_zip64_entry_count,
    write_zip,
)


def as_dict(names: list[str], row: list[str]) -> dict[str, str]:
    assert len(names) == len(row)
    return dict(zip(names, row, strict=True))


def read_all(path: Path, limits: BillLimits | None = None) -> tuple[list, list, list[BadRow]]:
    with BillFile(path, limits or BillLimits()) as bill:
        cdr = list(bill.iter_cdr())
        rec = list(bill.iter_records())
        return cdr, rec, list(bill.bad_rows)


# ------------------------------------------------------------------------------------ happy paths


def test_column_constants_match_the_reference() -> None:
    assert list(CDR_COLUMNS) == CDR_NAMES
    assert list(RECORD_COLUMNS) == RECORD_NAMES


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("bom", [False, True], ids=["nobom", "bom"])
def test_cdr_with_header_row(tmp_path: Path, newline: str, bom: bool) -> None:
    rows = [cdr_row(1), cdr_row(2)]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes(rows, CDR_NAMES, bom=bom, newline=newline)})
    with BillFile(path) as bill:
        assert bill.cdr_files == [CALL_1]
        assert bill.record_files == []
        assert bill.unexpected_entries == []
        assert bill.header(CALL_1) == CDR_NAMES
        got = list(bill.iter_cdr())
        assert got == [(CALL_1, 2, as_dict(CDR_NAMES, rows[0])), (CALL_1, 3, as_dict(CDR_NAMES, rows[1]))]
        assert bill.bad_rows == []


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("bom", [False, True], ids=["nobom", "bom"])
def test_cdr_without_header_row_is_read_by_position(tmp_path: Path, newline: str, bom: bool) -> None:
    rows = [cdr_row(1), cdr_row(2), cdr_row(3)]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes(rows, bom=bom, newline=newline)})
    with BillFile(path) as bill:
        assert bill.header(CALL_1) == CDR_NAMES
        got = list(bill.iter_cdr())
        assert got == [(CALL_1, n, as_dict(CDR_NAMES, row)) for n, row in enumerate(rows, start=1)]
        assert bill.bad_rows == []


def test_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([cdr_row(1)], CDR_NAMES, bom=True)})
    with BillFile(path) as bill:
        [(_, _, row)] = list(bill.iter_cdr())
    assert "developer" in row
    assert row["developer"] == "dev001"


def test_header_match_ignores_case_and_surrounding_spaces(tmp_path: Path) -> None:
    header = [f" {name.upper()} " for name in CDR_NAMES]
    rows = [cdr_row(1)]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes(rows, header)})
    with BillFile(path) as bill:
        assert list(bill.iter_cdr()) == [(CALL_1, 2, as_dict(CDR_NAMES, rows[0]))]
        assert bill.header(CALL_1) == CDR_NAMES


def test_recording_index_with_and_without_header(tmp_path: Path) -> None:
    rows = [record_row(1), record_row(2)]
    with_header = entry_name("record", 1)
    without = entry_name("record", 2)
    path = write_zip(
        tmp_path / "b.zip",
        {with_header: csv_bytes(rows, RECORD_NAMES), without: csv_bytes(rows)},
    )
    with BillFile(path) as bill:
        assert bill.record_files == [with_header, without]
        assert bill.cdr_files == []
        got = list(bill.iter_records())
        assert got == [
            (with_header, 2, as_dict(RECORD_NAMES, rows[0])),
            (with_header, 3, as_dict(RECORD_NAMES, rows[1])),
            (without, 1, as_dict(RECORD_NAMES, rows[0])),
            (without, 2, as_dict(RECORD_NAMES, rows[1])),
        ]
        assert list(bill.iter_rows("record")) == got
        # A backslash path in a value is data, not an entry name.
        assert got[0][2]["original_file_name"] == "X:\\17\\0\\20180903\\15470\\2043291.V3"


def test_cdr_and_record_entries_in_one_bill(tmp_path: Path) -> None:
    cdr, rec = [cdr_row(1)], [record_row(1)]
    path = write_zip(tmp_path / "b.zip", {RECORD_1: csv_bytes(rec, RECORD_NAMES), CALL_1: csv_bytes(cdr, CDR_NAMES)})
    got_cdr, got_rec, bad = read_all(path)
    assert got_cdr == [(CALL_1, 2, as_dict(CDR_NAMES, cdr[0]))]
    assert got_rec == [(RECORD_1, 2, as_dict(RECORD_NAMES, rec[0]))]
    assert bad == []


def test_split_files_are_read_in_number_order(tmp_path: Path) -> None:
    numbers = [10, 2, 1, 11, 3]  # written out of order; 10 and 11 must come after 3
    entries = {entry_name("call", n): csv_bytes([cdr_row(n)], CDR_NAMES) for n in numbers}
    path = write_zip(tmp_path / "b.zip", entries)
    with BillFile(path) as bill:
        assert bill.cdr_files == [entry_name("call", n) for n in (1, 2, 3, 10, 11)]
        got = list(bill.iter_cdr())
    assert [(name, line) for name, line, _ in got] == [(entry_name("call", n), 2) for n in (1, 2, 3, 10, 11)]
    assert [row for _, _, row in got] == [as_dict(CDR_NAMES, cdr_row(n)) for n in (1, 2, 3, 10, 11)]


def test_prefix_is_tolerated_suffix_is_strict(tmp_path: Path) -> None:
    odd_prefix = "export_call_7.csv"  # not the documented timestamp prefix: still a CDR file
    in_folder = f"bills/{PREFIX}_record_2.csv"
    unexpected = [
        "readme.txt",
        f"{PREFIX}_call_1.csv.bak",
        f"{PREFIX}_CALL_1.csv",  # only the extension's case may vary
        f"{PREFIX}_call.txt",
        f"{PREFIX}_call_1.cs",
        f"{PREFIX}_call_.csv",
        f"{PREFIX}_call_x.csv",
        f"{PREFIX}_calls_1.csv",
        "bills/",
    ]
    entries = dict.fromkeys(unexpected, b"whatever\n")
    entries[odd_prefix] = csv_bytes([cdr_row(1)])
    entries[in_folder] = csv_bytes([record_row(1)])
    path = write_zip(tmp_path / "b.zip", entries)
    with BillFile(path) as bill:
        assert bill.cdr_files == [odd_prefix]
        assert bill.record_files == [in_folder]
        assert sorted(bill.unexpected_entries) == sorted(unexpected)
        assert list(bill.iter_cdr()) == [(odd_prefix, 1, as_dict(CDR_NAMES, cdr_row(1)))]
        assert bill.bad_rows == []


def test_extra_trailing_columns_with_header_are_kept_under_their_names(tmp_path: Path) -> None:
    header = [*CDR_NAMES, "Leave_Reason", "", "developer", "x23"]
    row = [*cdr_row(1), "5", "e23", "e24", "e25"]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([row], header)})
    names = [*CDR_NAMES, "Leave_Reason", "extra_23", "extra_24", "x23"]  # empty / clashing names by position
    with BillFile(path) as bill:
        assert bill.header(CALL_1) == names
        assert list(bill.iter_cdr()) == [(CALL_1, 2, as_dict(names, row))]


def test_extra_trailing_columns_without_header_get_positional_names(tmp_path: Path) -> None:
    narrow = cdr_row(1)
    wide = [*cdr_row(2), "leave", "more"]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([narrow, wide])})
    with BillFile(path) as bill:
        got = list(bill.iter_cdr())
        assert got == [
            (CALL_1, 1, as_dict(CDR_NAMES, narrow)),
            (CALL_1, 2, as_dict([*CDR_NAMES, "extra_22", "extra_23"], wide)),
        ]
        assert bill.header(CALL_1) == [*CDR_NAMES, "extra_22", "extra_23"]


def test_extra_columns_of_recording_index_are_numbered_from_19(tmp_path: Path) -> None:
    row = [*record_row(1), "x"]
    path = write_zip(tmp_path / "b.zip", {RECORD_1: csv_bytes([row])})
    with BillFile(path) as bill:
        assert bill.header(RECORD_1) == [*RECORD_NAMES, "extra_19"]  # peeked before reading
        assert list(bill.iter_records()) == [(RECORD_1, 1, as_dict([*RECORD_NAMES, "extra_19"], row))]


def test_quoted_fields_with_commas_quotes_and_newlines(tmp_path: Path) -> None:
    tricky = cdr_row(
        1,
        developer='say "hi", then go',
        account_id="line one\nline two",
        cc_id="crlf\r\ninside",
        agent_id="",
        pre_device_no=" spaced ",
    )
    after = cdr_row(2)
    data = csv_bytes([tricky, after], CDR_NAMES)
    assert b'"say ""hi"", then go"' in data  # the file really uses RFC 4180 quoting
    path = write_zip(tmp_path / "b.zip", {CALL_1: data})
    with BillFile(path) as bill:
        got = list(bill.iter_cdr())
        assert bill.bad_rows == []
    # The tricky record spans physical lines 2-4; the next one starts on line 5.
    assert got == [(CALL_1, 2, as_dict(CDR_NAMES, tricky)), (CALL_1, 5, as_dict(CDR_NAMES, after))]


def test_non_ascii_values(tmp_path: Path) -> None:
    row = cdr_row(1, developer="华为开发者", account_id="租户空间", device_no="坐席→7", pre_device_no="😀")
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([row], CDR_NAMES, bom=True)})
    cdr, _, bad = read_all(path)
    assert cdr == [(CALL_1, 2, as_dict(CDR_NAMES, row))]
    assert bad == []


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    header = ",".join(CDR_NAMES)
    r1, r2 = cdr_row(1), cdr_row(2)
    text = "\r\n" + header + "\r\n\r\n" + ",".join(r1) + "\r\n\n" + ",".join(r2) + "\r\n\r\n"
    path = write_zip(tmp_path / "b.zip", {CALL_1: text.encode()})
    cdr, _, bad = read_all(path)
    assert cdr == [(CALL_1, 4, as_dict(CDR_NAMES, r1)), (CALL_1, 6, as_dict(CDR_NAMES, r2))]
    assert bad == []


def test_empty_entry_yields_nothing(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {CALL_1: b"", RECORD_1: b"\xef\xbb\xbf"})
    with BillFile(path) as bill:
        assert bill.header(CALL_1) == CDR_NAMES
        assert list(bill.iter_cdr()) == []
        assert list(bill.iter_records()) == []
        assert bill.bad_rows == []


# ----------------------------------------------------------- entry names and encodings (§4, issue 12)

CHINESE = {"developer": "华为云客服", "device_no": "坐席七号", "pre_device_no": "技能队列·售后"}


def test_chinese_sample_is_not_utf8_in_gb18030() -> None:
    """The GB18030 tests below mean something only if their bytes are not also valid UTF-8."""
    for text in CHINESE.values():
        with pytest.raises(UnicodeDecodeError):
            text.encode("gb18030").decode("utf-8")


def test_plain_entry_names_are_read_as_entry_number_0(tmp_path: Path) -> None:
    plain_call, plain_record = f"{PREFIX}_call.csv", f"{PREFIX}_record.csv"  # the downloadBillFile page
    entries = {
        CALL_1: csv_bytes([cdr_row(1)], CDR_NAMES),
        plain_call: csv_bytes([cdr_row(0)], CDR_NAMES),
        plain_record: csv_bytes([record_row(5)], RECORD_NAMES),
    }
    path = write_zip(tmp_path / "b.zip", entries)
    with BillFile(path) as bill:
        assert bill.cdr_files == [plain_call, CALL_1]  # number 0 before 1
        assert bill.record_files == [plain_record]
        assert bill.unexpected_entries == []
        assert list(bill.iter_cdr()) == [
            (plain_call, 2, as_dict(CDR_NAMES, cdr_row(0))),
            (CALL_1, 2, as_dict(CDR_NAMES, cdr_row(1))),
        ]
        assert list(bill.iter_records()) == [(plain_record, 2, as_dict(RECORD_NAMES, record_row(5)))]
        assert bill.empty_entries == []


@pytest.mark.parametrize("ext", [".CSV", ".Csv", ".cSV"])
def test_csv_extension_in_any_letter_case(tmp_path: Path, ext: str) -> None:
    numbered, plain = f"{PREFIX}_call_3{ext}", f"{PREFIX}_record{ext}"
    entries = {numbered: csv_bytes([cdr_row(3)], CDR_NAMES), plain: csv_bytes([record_row(1)], RECORD_NAMES)}
    path = write_zip(tmp_path / "b.zip", entries)
    with BillFile(path) as bill:
        assert (bill.cdr_files, bill.record_files, bill.unexpected_entries) == ([numbered], [plain], [])
        assert list(bill.iter_cdr()) == [(numbered, 2, as_dict(CDR_NAMES, cdr_row(3)))]
        assert list(bill.iter_records()) == [(plain, 2, as_dict(RECORD_NAMES, record_row(1)))]


def test_gb18030_entry_decodes_chinese_text_per_entry(tmp_path: Path) -> None:
    gbk_rows = [cdr_row(1, **CHINESE), cdr_row(2)]
    utf8_rows = [record_row(1, agent_id="张三")]
    entries = {
        CALL_1: csv_bytes(gbk_rows, CDR_NAMES, encoding="gb18030"),
        RECORD_1: csv_bytes(utf8_rows, RECORD_NAMES),  # the same bill, another entry in UTF-8
    }
    path = write_zip(tmp_path / "b.zip", entries)
    with BillFile(path) as bill:
        got = list(bill.iter_cdr())
        assert got == [(CALL_1, 2, as_dict(CDR_NAMES, gbk_rows[0])), (CALL_1, 3, as_dict(CDR_NAMES, gbk_rows[1]))]
        assert got[0][2]["device_no"] == "坐席七号"
        assert list(bill.iter_records()) == [(RECORD_1, 2, as_dict(RECORD_NAMES, utf8_rows[0]))]
        assert (bill.encoding(CALL_1), bill.encoding(RECORD_1)) == ("gb18030", "utf-8-sig")
        assert bill.bad_rows == []


def test_gbk_text_far_into_an_otherwise_ascii_entry_is_decoded(tmp_path: Path) -> None:
    """A GBK file often starts with pages of plain ASCII: the first block alone cannot decide."""
    rows = [cdr_row(i) for i in range(1500)] + [cdr_row(9, **CHINESE)]
    data = csv_bytes(rows, CDR_NAMES, encoding="gb18030")
    assert data.index("华".encode("gb18030")) > 4 * 64 * 1024
    path = write_zip(tmp_path / "b.zip", {CALL_1: data})
    with BillFile(path) as bill:
        got = list(bill.iter_cdr())
        assert bill.encoding(CALL_1) == "gb18030"
    assert len(got) == len(rows)
    assert got[-1] == (CALL_1, len(rows) + 1, as_dict(CDR_NAMES, rows[-1]))


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflate"])
def test_utf8_without_bom_split_across_read_blocks_stays_utf8(tmp_path: Path, compression: int) -> None:
    # Three-byte characters everywhere: block boundaries fall inside characters.
    rows = [cdr_row(i, developer="华为" * (7 + i % 5), device_no="坐席" * 11) for i in range(1200)]
    data = csv_bytes(rows, CDR_NAMES)
    assert len(data) > 3 * 64 * 1024
    path = write_zip(tmp_path / "b.zip", {CALL_1: data}, compression=compression)
    with BillFile(path) as bill:
        assert bill.encoding(CALL_1) == "utf-8-sig"
        assert [row for _, _, row in bill.iter_cdr()] == [as_dict(CDR_NAMES, r) for r in rows]


def test_text_neither_utf8_nor_gb18030_is_a_corrupt_bill(tmp_path: Path) -> None:
    data = csv_bytes([cdr_row(1)], CDR_NAMES) + b"dev\xff\xff," + b"," * 20 + b"\r\n"
    path = write_zip(tmp_path / "b.zip", {CALL_1: data})
    with (
        BillFile(path) as bill,
        pytest.raises(CorruptBill, match=r"not valid UTF-8 and not valid GB18030 either .*line \d+"),
    ):
        list(bill.iter_cdr())


def test_headerless_crlf_gb18030_entry_with_a_plain_upper_case_name(tmp_path: Path) -> None:
    name = f"{PREFIX}_record.CSV"
    rows = [record_row(1, agent_id="李四"), [*record_row(2, agent_id="王五"), "备注"]]
    data = csv_bytes(rows, None, newline="\r\n", encoding="gb18030")
    assert data.count(b"\r\n") == 2 and b"\n" not in data.replace(b"\r\n", b"")
    path = write_zip(tmp_path / "b.zip", {name: data})
    with BillFile(path) as bill:
        assert bill.record_files == [name]
        assert list(bill.iter_records()) == [
            (name, 1, as_dict(RECORD_NAMES, rows[0])),
            (name, 2, as_dict([*RECORD_NAMES, "extra_19"], rows[1])),
        ]
        assert bill.empty_entries == []


def test_spaced_upper_case_header_keeps_an_extra_column_under_its_stripped_name(tmp_path: Path) -> None:
    header = [f" {name.upper()} " for name in [*CDR_NAMES, "leave_reason"]]
    row = [*cdr_row(1), "3"]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([row], header)})
    with BillFile(path) as bill:
        assert list(bill.iter_cdr()) == [(CALL_1, 2, as_dict([*CDR_NAMES, "LEAVE_REASON"], row))]


def test_unrecognised_and_empty_entries_are_listed(tmp_path: Path) -> None:
    header_only, blank_lines, nothing = CALL_1, entry_name("call", 2), RECORD_1
    only_bad = entry_name("call", 4)
    entries = {
        header_only: csv_bytes([], CDR_NAMES),
        blank_lines: b"\r\n\r\n",
        nothing: b"",
        only_bad: csv_bytes([["too", "short"]], CDR_NAMES),
        entry_name("call", 3): csv_bytes([cdr_row(3)], CDR_NAMES),
        "readme.txt": b"hello",
        f"{PREFIX}_summary.csv": csv_bytes([cdr_row(1)], CDR_NAMES),
    }
    path = write_zip(tmp_path / "b.zip", entries)
    with BillFile(path) as bill:
        assert sorted(bill.unexpected_entries) == sorted(["readme.txt", f"{PREFIX}_summary.csv"])
        assert bill.empty_entries == []  # nothing read yet
        assert len(list(bill.iter_cdr())) == 1
        assert bill.empty_entries == [header_only, blank_lines]  # an entry of bad rows is not empty: they are
        assert [b.file for b in bill.bad_rows] == [only_bad]  # reported as bad rows
        assert list(bill.iter_records()) == []
        list(bill.iter_cdr())  # read again: listed once
        assert bill.empty_entries == [header_only, blank_lines, nothing]


def test_stored_entries_are_read(tmp_path: Path) -> None:
    rows = [cdr_row(1)]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes(rows, CDR_NAMES)}, compression=zipfile.ZIP_STORED)
    assert read_all(path)[0] == [(CALL_1, 2, as_dict(CDR_NAMES, rows[0]))]


def test_streamed_zip_with_data_descriptors(tmp_path: Path) -> None:
    rows = [cdr_row(1), cdr_row(2)]
    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(CALL_1, csv_bytes(rows, CDR_NAMES))
    path = tmp_path / "b.zip"
    path.write_bytes(bytes(sink.data))
    with zipfile.ZipFile(path) as check:
        assert check.getinfo(CALL_1).flag_bits & 0x08  # the sizes follow the data
    assert read_all(path)[0] == [(CALL_1, 2, as_dict(CDR_NAMES, rows[0])), (CALL_1, 3, as_dict(CDR_NAMES, rows[1]))]


def _zip64_bill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: int) -> Path:
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)  # make zipfile write the ZIP64 end records
    numbers = range(1, entries + 1)
    path = write_zip(tmp_path / "b.zip", {entry_name("call", n): csv_bytes([cdr_row(n)]) for n in numbers})
    monkeypatch.undo()
    # With ZIP64 end records, the classic record's count may say 0xFFFF ("see the ZIP64 record").
    path.write_bytes(patch_entry_count(path.read_bytes(), 0xFFFF))
    return path


def test_zip64_end_records_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _zip64_bill(tmp_path, monkeypatch, 3)
    cdr, _, bad = read_all(path)
    assert cdr == [(entry_name("call", n), 1, as_dict(CDR_NAMES, cdr_row(n))) for n in (1, 2, 3)]
    assert bad == []


def test_zip64_entry_count_is_checked_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _zip64_bill(tmp_path, monkeypatch, 3)
    path.write_bytes(patch_zip64_entry_count(path.read_bytes(), 5_000_000))
    with pytest.raises(ZipBomb, match="5000000 entries"):
        BillFile(path)


def test_reading_twice_gives_the_same_rows_and_does_not_duplicate_bad_rows(tmp_path: Path) -> None:
    rows = [cdr_row(1), cdr_row(2)[:5], cdr_row(3)]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes(rows)})
    with BillFile(path) as bill:
        first = list(bill.iter_cdr())
        second = list(bill.iter_cdr())
        assert first == second == [(CALL_1, 1, as_dict(CDR_NAMES, rows[0])), (CALL_1, 3, as_dict(CDR_NAMES, rows[2]))]
        assert [(b.file, b.line) for b in bill.bad_rows] == [(CALL_1, 2)]


def test_api_misuse(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([cdr_row(1)])})
    bill = BillFile(path)
    with pytest.raises(KeyError, match="not a CDR or recording-index entry"):
        bill.header("nope.csv")
    with pytest.raises(ValueError, match="kind"):
        list(bill.iter_rows("calls"))  # type: ignore[arg-type]
    bill.close()
    bill.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        list(bill.iter_cdr())


def test_missing_file_is_an_os_error_not_a_bill_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        BillFile(tmp_path / "missing.zip")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_ratio"):
        BillLimits(max_ratio=0)


# ------------------------------------------------------------------------------------ malformed rows


def test_malformed_rows_are_reported_with_file_and_line_and_skipped(tmp_path: Path) -> None:
    good1, good2 = cdr_row(1), cdr_row(5)
    short = cdr_row(2)[:20]
    with_nul = cdr_row(3, caller_no="138\x00" + PHONE)
    header_file = entry_name("call", 2)
    hdr_good = cdr_row(6)
    hdr_long = [*cdr_row(7), "surplus"]
    hdr_short = cdr_row(8)[:-1]
    path = write_zip(
        tmp_path / "b.zip",
        {
            CALL_1: csv_bytes([good1, short, with_nul, good2]),
            header_file: csv_bytes([hdr_long, hdr_good, hdr_short], CDR_NAMES),
        },
    )
    cdr, _, bad = read_all(path)
    assert cdr == [
        (CALL_1, 1, as_dict(CDR_NAMES, good1)),
        (CALL_1, 4, as_dict(CDR_NAMES, good2)),
        (header_file, 3, as_dict(CDR_NAMES, hdr_good)),
    ]
    assert [(b.file, b.line) for b in bad] == [(CALL_1, 2), (CALL_1, 3), (header_file, 2), (header_file, 4)]
    assert "20 fields" in bad[0].reason and "21" in bad[0].reason
    assert "NUL" in bad[1].reason
    assert "22 fields" in bad[2].reason and "header row has 21" in bad[2].reason
    assert "20 fields" in bad[3].reason
    for row in bad:
        assert PHONE not in row.reason and "138" not in row.reason


def test_first_row_that_is_neither_header_nor_data_is_a_bad_row(tmp_path: Path) -> None:
    rows = [["call_id", "caller_no"], cdr_row(1)]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes(rows)})
    cdr, _, bad = read_all(path)
    assert cdr == [(CALL_1, 2, as_dict(CDR_NAMES, rows[1]))]
    assert [(b.file, b.line) for b in bad] == [(CALL_1, 1)]


def test_over_long_field_makes_the_row_malformed(tmp_path: Path) -> None:
    limits = BillLimits(max_field_chars=40)
    ok = cdr_row(1, developer="d" * 40)
    too_long = cdr_row(2, developer=PHONE * 4)  # 44 characters
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([too_long, ok])})
    cdr, _, bad = read_all(path, limits)
    assert cdr == [(CALL_1, 2, as_dict(CDR_NAMES, ok))]
    assert bad == [BadRow(CALL_1, 1, "field 1 is longer than 40 characters")]


def test_too_many_fields(tmp_path: Path) -> None:
    limits = BillLimits(max_row_fields=23)
    ok = [*cdr_row(1), "a", "b"]
    too_wide = [*cdr_row(2), "a", "b", "c"]
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([too_wide, ok])})
    cdr, _, bad = read_all(path, limits)
    assert cdr == [(CALL_1, 2, as_dict([*CDR_NAMES, "extra_22", "extra_23"], ok))]
    assert [(b.file, b.line) for b in bad] == [(CALL_1, 1)]
    assert "24 fields" in bad[0].reason


def test_field_over_the_csv_module_limit_is_a_bad_row(tmp_path: Path) -> None:
    huge = cdr_row(1, developer="x" * 200_000)  # over csv's own 131072-character field limit
    ok = cdr_row(2)
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([huge, ok])})
    cdr, _, bad = read_all(path)
    assert cdr == [(CALL_1, 2, as_dict(CDR_NAMES, ok))]
    assert [(b.file, b.line) for b in bad] == [(CALL_1, 1)]


def test_over_long_physical_line_is_skipped_without_reading_it_whole(tmp_path: Path) -> None:
    limits = BillLimits(max_field_chars=20, max_row_fields=30)  # rows up to 30 * 23 + 2 = 692 characters
    ok1, ok2 = cdr_row(1), cdr_row(2)
    text = ",".join(ok1) + "\n" + "y," * 100_000 + "\n" + ",".join(ok2) + "\n"
    path = write_zip(tmp_path / "b.zip", {CALL_1: text.encode()})
    cdr, _, bad = read_all(path, limits)
    assert cdr == [(CALL_1, 1, as_dict(CDR_NAMES, ok1)), (CALL_1, 3, as_dict(CDR_NAMES, ok2))]
    assert bad == [BadRow(CALL_1, 2, "row is longer than 692 characters")]


def test_unterminated_quote_is_bounded(tmp_path: Path) -> None:
    limits = BillLimits(max_field_chars=20, max_row_fields=30)
    ok = cdr_row(1)
    # An opening quote that never closes would swallow every following line into one field.
    text = ",".join(ok) + '\n"never closed,' + "\n".join(["abc,def"] * 2_000) + "\n"
    path = write_zip(tmp_path / "b.zip", {CALL_1: text.encode()})
    cdr, _, bad = read_all(path, limits)
    assert cdr == [(CALL_1, 1, as_dict(CDR_NAMES, ok))]
    # whichever row limit the swallowed lines reach first: 50 commas (30 fields + one field of 20)
    assert bad[0] == BadRow(CALL_1, 2, "row has more than 50 commas")
    assert all(b.file == CALL_1 for b in bad)


def test_undecodable_text_is_corrupt(tmp_path: Path) -> None:
    data = csv_bytes([cdr_row(1)]) + ",".join(cdr_row(2, developer="caf\xe9")).encode("latin-1") + b"\r\n"
    path = write_zip(tmp_path / "b.zip", {CALL_1: data})
    with BillFile(path) as bill, pytest.raises(CorruptBill, match=r"not valid UTF-8 .*line \d+"):
        list(bill.iter_cdr())


# ------------------------------------------------------------------------------------ hostile archives


@pytest.mark.parametrize(
    "name",
    [
        "../x_call_1.csv",
        "a/../../x_call_1.csv",
        "/abs_call_1.csv",
        "a\\..\\b_call_1.csv",
        "C:/x",
        "c:x_call_1.csv",
        "a\nb_call_1.csv",
        "",
    ],
)
def test_unsafe_entry_names_refuse_the_bill(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([cdr_row(1)]), name: b"x"})
    with pytest.raises(UnsafeEntryName) as caught:
        BillFile(path)
    message = str(caught.value)
    assert repr(name) in message
    assert "\n" not in message


def test_unsafe_name_with_nul_byte(tmp_path: Path) -> None:
    # zipfile cannot write a NUL into a name: write a placeholder and patch both headers.
    path = write_zip(tmp_path / "b.zip", {"a#b_call_1.csv": b"x"})
    path.write_bytes(path.read_bytes().replace(b"a#b_call", b"a\x00b_call"))
    with pytest.raises(UnsafeEntryName, match=r"control characters"):
        BillFile(path)


def test_long_unsafe_name_is_truncated_in_the_message(tmp_path: Path) -> None:
    name = "../" + "a" * 500 + "_call_1.csv"
    path = write_zip(tmp_path / "b.zip", {name: b"x"})
    with pytest.raises(UnsafeEntryName) as caught:
        BillFile(path)
    assert len(str(caught.value)) < 300


def test_duplicate_entry_names_refuse_the_bill(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate
        path = write_zip(tmp_path / "b.zip", [(CALL_1, csv_bytes([cdr_row(1)])), (CALL_1, csv_bytes([cdr_row(2)]))])
    with pytest.raises(UnsafeEntryName, match="more than one entry"):
        BillFile(path)


def _zeros_zip(path: Path, name: str, size: int) -> Path:
    chunk = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open(name, "w") as out:
        for _ in range(size // len(chunk)):
            out.write(chunk)
    return path


@pytest.mark.parametrize("name", [CALL_1, "unrelated.bin"])
def test_zip_bomb_by_ratio(tmp_path: Path, name: str) -> None:
    path = _zeros_zip(tmp_path / "bomb.zip", name, 50 * 1024 * 1024)
    assert path.stat().st_size < 200_000
    with pytest.raises(ZipBomb, match=r"ratio \d+, limit 200.*max_ratio"):
        BillFile(path)


def test_high_ratio_allowed_below_one_mebibyte(tmp_path: Path) -> None:
    # 512 KiB of a repeated row compresses far beyond 200:1, but small entries are not ratio-checked.
    line = ",".join(cdr_row(1)) + "\n"
    data = (line * (512 * 1024 // len(line))).encode()
    path = write_zip(tmp_path / "b.zip", {CALL_1: data})
    with BillFile(path) as bill:
        assert sum(1 for _ in bill.iter_cdr()) == data.count(b"\n")


def test_zip_bomb_by_total_size(tmp_path: Path) -> None:
    data1 = csv_bytes([cdr_row(i) for i in range(5)])
    data2 = csv_bytes([record_row(i) for i in range(5)])
    path = write_zip(tmp_path / "b.zip", {CALL_1: data1, RECORD_1: data2})
    with pytest.raises(ZipBomb, match=r"more than \d+ bytes uncompressed in total"):
        BillFile(path, BillLimits(max_total_uncompressed=len(data1) + len(data2) - 1))
    # Exactly at the limit is fine.
    cdr, rec, _ = read_all(path, BillLimits(max_total_uncompressed=len(data1) + len(data2)))
    assert len(cdr) == 5 and len(rec) == 5


def test_too_many_entries(tmp_path: Path) -> None:
    entries = {entry_name("call", n): csv_bytes([cdr_row(n)]) for n in range(1, 5)}
    path = write_zip(tmp_path / "b.zip", entries)
    with pytest.raises(ZipBomb, match="4 entries"):
        BillFile(path, BillLimits(max_entries=3))
    with BillFile(path, BillLimits(max_entries=4)) as bill:
        assert len(bill.cdr_files) == 4


def test_too_many_entries_when_the_end_record_understates_them(tmp_path: Path) -> None:
    entries = {entry_name("call", n): csv_bytes([cdr_row(n)]) for n in range(1, 5)}
    data = patch_entry_count(write_zip(tmp_path / "b.zip", entries).read_bytes(), 1)
    (tmp_path / "b.zip").write_bytes(data)
    with pytest.raises(ZipBomb, match="4 entries"):
        BillFile(tmp_path / "b.zip", BillLimits(max_entries=3))


def test_too_many_entries_refused_from_the_end_record_before_parsing(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([cdr_row(1)])})
    path.write_bytes(patch_entry_count(path.read_bytes(), 60_000))
    with pytest.raises(ZipBomb, match="60000 entries"):
        BillFile(path)


def test_entry_that_inflates_beyond_its_declared_size(tmp_path: Path) -> None:
    rows = [cdr_row(i) for i in range(20)]
    data = csv_bytes(rows)
    path = write_zip(tmp_path / "b.zip", {CALL_1: data})
    path.write_bytes(patch_sizes(path.read_bytes(), CALL_1, file_size=len(data) // 2))
    # zipfile stops inflating at the declared size, so the CRC of what came out cannot match.
    with BillFile(path) as bill, pytest.raises(CorruptBill, match="failed its CRC check"):
        list(bill.iter_cdr())


def test_lying_size_with_forged_crc_never_yields_more_than_declared(tmp_path: Path) -> None:
    rows = [cdr_row(i) for i in range(10)]
    data = csv_bytes(rows)
    cut = data.index(b"\r\n", len(data) - 200) + 2 + 30  # 30 bytes into a later row: mid field 3
    path = write_zip(tmp_path / "b.zip", {CALL_1: data})
    path.write_bytes(patch_sizes(path.read_bytes(), CALL_1, file_size=cut, crc=zlib.crc32(data[:cut])))
    cdr, _, bad = read_all(path)
    complete = data[:cut].count(b"\r\n")
    assert cdr == [(CALL_1, n, as_dict(CDR_NAMES, rows[n - 1])) for n in range(1, complete + 1)]
    assert [(b.file, b.line) for b in bad] == [(CALL_1, complete + 1)]  # the cut row is reported


def test_decompressor_overrun_is_caught_by_the_byte_counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: should zipfile ever hand out more than an entry declares, reading stops."""
    data = csv_bytes([cdr_row(1)])
    path = write_zip(tmp_path / "b.zip", {CALL_1: data})

    def endless(self: object, n: int = -1) -> bytes:
        return b"a," * max(1, n // 2)

    with BillFile(path) as bill:
        monkeypatch.setattr(zipfile.ZipExtFile, "read1", endless)
        with pytest.raises(ZipBomb, match=f"inflates beyond its declared size of {len(data)} bytes"):
            list(bill.iter_cdr())


def test_total_budget_counts_each_entry_once() -> None:
    budget = bills._Budget(BillLimits(max_total_uncompressed=100))
    budget.reached("a", 60)
    budget.reached("a", 60)  # the same entry read again
    budget.reached("b", 40)
    assert budget.total == 100
    with pytest.raises(ZipBomb, match="more than 100 bytes in total"):
        budget.reached("c", 1)


def test_corrupt_crc_in_a_stored_entry(tmp_path: Path) -> None:
    rows = [cdr_row(1), cdr_row(2)]
    data = csv_bytes(rows)
    path = write_zip(tmp_path / "b.zip", {CALL_1: data}, compression=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = data_offset(bytes(raw), CALL_1) + data.index(b"acct001") + 4  # '0' -> '1': still valid text
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    with BillFile(path) as bill, pytest.raises(CorruptBill) as caught:
        list(bill.iter_cdr())
    assert str(caught.value) == (
        f"bill ZIP entry {CALL_1!r} failed its CRC check: the file is corrupt or was truncated in transit"
    )


def test_corrupt_deflate_stream(tmp_path: Path) -> None:
    data = csv_bytes([cdr_row(i) for i in range(50)])
    path = write_zip(tmp_path / "b.zip", {CALL_1: data})
    raw = bytearray(path.read_bytes())
    start = data_offset(bytes(raw), CALL_1)
    for i in range(start + 5, start + 40):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with BillFile(path) as bill, pytest.raises(CorruptBill):
        list(bill.iter_cdr())


@pytest.mark.parametrize("keep", [0.5, 0.95, -1, -22])
def test_truncated_zip(tmp_path: Path, keep: float) -> None:
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([cdr_row(i) for i in range(30)])})
    raw = path.read_bytes()
    cut = int(len(raw) * keep) if keep > 0 else len(raw) + int(keep)
    path.write_bytes(raw[:cut])
    with pytest.raises(CorruptBill, match="not a readable ZIP file"):
        BillFile(path)


@pytest.mark.parametrize(
    "content", [b"", b"developer,account_id\n", b"PK\x03\x04" + b"\0" * 40, b'{"resultCode":"0300012"}']
)
def test_not_a_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "b.zip"
    path.write_bytes(content)
    with pytest.raises(CorruptBill, match="not a readable ZIP file"):
        BillFile(path)


def _set_header_field(data: bytes, name: str, local_at: int, central_at: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<H", out, local_header_offset(data, name) + local_at, value)
    struct.pack_into("<H", out, central_header_offset(data, name) + central_at, value)
    return bytes(out)


def test_encrypted_entry_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([cdr_row(1)])})
    path.write_bytes(_set_header_field(path.read_bytes(), CALL_1, 6, 8, 0x0001))  # flag bit 0
    with pytest.raises(CorruptBill, match="encrypted"):
        BillFile(path)


def test_unsupported_compression_method_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {CALL_1: csv_bytes([cdr_row(1)])})
    path.write_bytes(_set_header_field(path.read_bytes(), CALL_1, 8, 10, zipfile.ZIP_BZIP2))
    with pytest.raises(CorruptBill, match="compression method 12"):
        BillFile(path)


# ------------------------------------------------------------------------------------ fuzzing


def _consume(path: Path) -> None:
    with BillFile(path, BillLimits(max_total_uncompressed=10 * 1024 * 1024)) as bill:
        for name in bill.cdr_files + bill.record_files:
            bill.header(name)
        for _ in bill.iter_cdr():
            pass
        for _ in bill.iter_records():
            pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=4096), mutated_bills(), bills_with_random_content()))
def test_fuzz_only_bill_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzz.zip"
    path.write_bytes(content)
    started = time.monotonic()
    with contextlib.suppress(BillError):
        _consume(path)
    assert time.monotonic() - started < 5
