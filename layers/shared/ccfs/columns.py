"""Column layouts of the bill CSV files (shared/ccfs-protocol.md §4).

Used by the bill reader when a file arrives without a header row (columns by position)
and by the simulator when it writes files.
"""

from __future__ import annotations

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

# Documented columns 1-21; the vendor documents more past column 21. Unknown trailing
# columns are kept by the reader under positional names (see ccfs.bills).
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
