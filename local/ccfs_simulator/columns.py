"""The bill CSV columns as shared/ccfs-protocol.md §4 lists them: the simulator's own copy.

Deliberately not imported from ``ccfs.columns``: the simulator plays the other side of the
protocol, so a misreading in the client's column list must show up as a difference against the
ground truth, not be hidden by both sides agreeing by construction.
"""

from __future__ import annotations

__all__ = ["CDR_COLUMNS", "CDR_HEADER", "INDEX_HEADER", "RECORD_COLUMNS"]

# Recording index (`_record_`), 18 columns.
RECORD_COLUMNS: tuple[str, ...] = (
    "developer",
    "account_id",
    "cc_id",
    "agent_id",
    "call_id",
    "caller_no",
    "callee_no",
    "call_begin",
    "call_end",
    "file_name",
    "task_status",
    "task_result",
    "original_file_name",
    "vdn_id",
    "call_type",
    "media_type",
    "user_wanted_skill_id",
    "current_skill_id",
)

# CDR (`_call_`), documented columns 1-21.
CDR_COLUMNS: tuple[str, ...] = (
    "developer",
    "account_id",
    "cc_id",
    "agent_id",
    "call_id",
    "caller_no",
    "callee_no",
    "wait_begin",
    "wait_end",
    "ack_begin",
    "ack_end",
    "call_begin",
    "call_end",
    "device_type",
    "device_no",
    "call_type",
    "release_cause",
    "call_id_num",
    "vdn_id",
    "pre_device_type",
    "pre_device_no",
)

# What the simulator writes: the documented 21 CDR columns plus one trailing column the
# documentation hints at (clients must keep columns they do not know), and the 18 index columns.
CDR_HEADER: tuple[str, ...] = (*CDR_COLUMNS, "leave_reason")
INDEX_HEADER: tuple[str, ...] = RECORD_COLUMNS
