"""Bill rows and bill strategies shared by the bill reader's tests and its fuzz tests.

The column names are written out as the protocol reference lists them (§4), on purpose."""

from __future__ import annotations

import io
import zipfile

from hypothesis import strategies as st

from tests.unit.zipfactory import (
    csv_bytes,
    entry_name,
)

PHONE = "13800138000"  # personal data marker: must never appear in a bad-row reason

# The column names as the protocol reference lists them (§4), written out here on purpose.
CDR_NAMES = [
    *("developer", "account_id", "cc_id", "agent_id", "call_id", "caller_no", "callee_no", "wait_begin"),
    *("wait_end", "ack_begin", "ack_end", "call_begin", "call_end", "device_type", "device_no", "call_type"),
    *("release_cause", "call_id_num", "vdn_id", "pre_device_type", "pre_device_no"),
]


RECORD_NAMES = [
    *("developer", "account_id", "cc_id", "agent_id", "call_id", "caller_no", "callee_no", "call_begin"),
    *("call_end", "file_name", "task_status", "task_result", "original_file_name", "vdn_id", "call_type"),
    *("media_type", "user_wanted_skill_id", "current_skill_id"),
]


CALL_1 = entry_name("call", 1)


RECORD_1 = entry_name("record", 1)


def cdr_row(i: int, **overrides: str) -> list[str]:
    values = {
        "developer": "dev001",
        "account_id": "acct001",
        "cc_id": "1",
        "agent_id": str(100 + i),
        "call_id": f"1637742300-{i}",
        "caller_no": PHONE,
        "callee_no": f"40012345{i:02d}",
        "wait_begin": "2026-01-02 03:04:00",
        "wait_end": "2026-01-02 03:04:05",
        "ack_begin": "2026-01-02 03:04:05",
        "ack_end": "2026-01-02 03:04:06",
        "call_begin": "2026-01-02 03:04:06",
        "call_end": "2026-01-02 03:09:06",
        "device_type": "2",
        "device_no": str(i),
        "call_type": "0",
        "release_cause": "0",
        "call_id_num": "-1",
        "vdn_id": "1",
        "pre_device_type": "",
        "pre_device_no": "",
    }
    values.update(overrides)
    return [values[name] for name in CDR_NAMES]


def record_row(i: int, **overrides: str) -> list[str]:
    values = {
        "developer": "dev001",
        "account_id": "acct001",
        "cc_id": "1",
        "agent_id": str(100 + i),
        "call_id": f"1637742300-{i}",
        "caller_no": PHONE,
        "callee_no": "4001234500",
        "call_begin": "2026-01-02 03:04:06",
        "call_end": "2026-01-02 03:09:06",
        "file_name": f"/10/1/record/100/13533/090337{i}.wav",
        "task_status": "1",
        "task_result": "0",
        "original_file_name": f"X:\\17\\0\\20180903\\15470\\204329{i}.V3",
        "vdn_id": "1",
        "call_type": "0",
        "media_type": "5",
        "user_wanted_skill_id": "3",
        "current_skill_id": "3",
    }
    values.update(overrides)
    return [values[name] for name in RECORD_NAMES]


def _valid_bill() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(
            zipfile.ZipInfo(CALL_1), csv_bytes([cdr_row(1), cdr_row(2)], CDR_NAMES), compress_type=zipfile.ZIP_DEFLATED
        )
        zf.writestr(zipfile.ZipInfo(RECORD_1), csv_bytes([record_row(1)]), compress_type=zipfile.ZIP_STORED)
        zf.writestr(zipfile.ZipInfo("notes.txt"), b"hello")
    return out.getvalue()


VALID_BILL = _valid_bill()


@st.composite
def mutated_bills(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID_BILL)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=64))
    return bytes(data)


@st.composite
def bills_with_random_content(draw: st.DrawFn) -> bytes:
    """Structurally valid ZIPs (CRCs right) around random CSV-ish text or random bytes."""
    csv_text = st.text(alphabet=st.sampled_from([*'a,"\r\n\x00 é华', "\ufeff"]), max_size=400)
    content = draw(st.one_of(csv_text.map(lambda t: t.encode("utf-8")), st.binary(max_size=400)))
    if draw(st.booleans()):
        content = ",".join(CDR_NAMES).encode() + b"\r\n" + content
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(draw(st.sampled_from([CALL_1, RECORD_1])), content)
    return out.getvalue()
