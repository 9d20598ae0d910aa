"""A bill's recordings: collected from its index rows, numbered per call, and sent as one
RecordingQueue message each (docs/design.md, Messages).

The descriptors wait in a JSONL file (memory stays flat whatever the bill's size); per call only
the sort keys needed for ``ordinal``/``count`` are held. A recording the index lists twice is sent
once. Sending is in batches of 10 with the entries SQS reports ``Failed`` resent (bounded).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ccfs.models import parse_time
from exporter import layout
from exporter.messages import RecordingMessage, message_body

__all__ = ["SEND_ATTEMPTS", "SQS_BATCH", "Recordings", "add_recording", "recording_messages", "send_batches"]

SQS_BATCH = 10
SEND_ATTEMPTS = 4


@dataclass
class Recordings:
    """Descriptors in a JSONL file; per call, the sort keys needed for ordinal/count."""

    path: str
    handle: IO[str]
    per_call: dict[str, list[tuple[str, str, str, bool]]] = field(default_factory=dict)  # begin, end, name, timed
    seen: set[tuple[str, str]] = field(default_factory=set)
    total: int = 0
    duplicates: int = 0


def add_recording(recordings: Recordings, descriptor: dict[str, Any], row: dict[str, str]) -> None:
    call_id, file_name = descriptor["callId"], descriptor["fileName"]
    unique = (call_id, layout.recording_path(file_name))  # the whole path: two agents' files may share a name
    if unique in recordings.seen:
        recordings.duplicates += 1
        return
    recordings.seen.add(unique)
    recordings.per_call.setdefault(call_id, []).append(
        (descriptor["callBegin"], descriptor["callEnd"], file_name, _has_times(row))
    )
    recordings.handle.write(json.dumps({**descriptor, "row": row}, ensure_ascii=False) + "\n")
    recordings.total += 1


def _has_times(row: dict[str, str]) -> bool:
    """Whether an index row has a valid call_begin and call_end (its place in the call is known)."""
    try:
        parse_time((row.get("call_begin") or "").strip())
        parse_time((row.get("call_end") or "").strip())
    except ValueError:
        return False
    return True


def recording_messages(recordings: Recordings, response_id: str, tenant: str) -> Iterator[str]:
    """RecordingQueue bodies, read back from the JSONL file; ordinal is 1-based per call.

    A call's rows are ordered as CC-FS orders its URLs, "by start time and end time" (protocol §5):
    by call_begin, then call_end, then file name (only to be deterministic). ``ordinalCertain`` is
    false where that order is a guess: two rows with the same begin and end, or a row of the call
    without valid times (its place is unknown, so everyone's is).
    """
    ordinals: dict[tuple[str, str], tuple[int, int, bool, int, int]] = {}
    key_names: dict[tuple[str, str], str] = {}  # recordings of one call sharing a stem: distinct key names
    for call_id, items in recordings.per_call.items():
        stems = Counter(layout.recording_stem(name) for _begin, _end, name, _timed in items)
        for _begin, _end, name, _timed in items:
            if stems[layout.recording_stem(name)] > 1:
                key_names[(call_id, name)] = layout.distinct_stem(name)
        ordered = sorted(items)
        all_timed = all(timed for *_, timed in items)
        times = Counter((begin, end) for begin, end, _name, _timed in items)
        for position, (begin, end, file_name, _timed) in enumerate(ordered, start=1):
            # The recording step asks for this row's [callBegin, callEnd]: CC-FS answers the call's
            # recordings that begin inside it (this one and any that start before it ends).
            in_window = [item[2] for item in ordered if begin <= item[0] <= end]
            ordinals[(call_id, file_name)] = (
                position,
                len(ordered),
                all_timed and times[(begin, end)] == 1,
                in_window.index(file_name) + 1,
                len(in_window),
            )
    with open(recordings.path, encoding="utf-8") as source:
        for line in source:
            descriptor = json.loads(line)
            ordinal, count, certain, url_ordinal, url_count = ordinals[(descriptor["callId"], descriptor["fileName"])]
            key_name = key_names.get((descriptor["callId"], descriptor["fileName"]))
            # Built without validation, as it always was sent: a value the consumer's model refuses
            # (e.g. a call_id longer than CC-FS's) is refused there, for this recording alone, with
            # the reason; validating here would fail the whole bill's fan-out instead.
            yield message_body(
                RecordingMessage.model_construct(
                    keyName=key_name,
                    responseId=response_id,
                    tenant=tenant,
                    accountId=descriptor["accountId"],
                    callId=descriptor["callId"],
                    callBegin=descriptor["callBegin"],
                    callEnd=descriptor["callEnd"],
                    fileName=descriptor["fileName"],
                    originalFileName=descriptor["originalFileName"],
                    callDate=descriptor["callDate"],
                    ordinal=ordinal,
                    count=count,
                    ordinalCertain=certain,
                    urlOrdinal=url_ordinal,
                    urlCount=url_count,
                    row=descriptor["row"],
                )
            )


def send_batches(
    sqs: Any,
    queue_url: str,
    bodies: Iterable[str],
    *,
    attempts: int = SEND_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send bodies in batches of 10, resending the entries SQS reports as ``Failed`` (bounded).

    Raises RuntimeError when some entries still fail, so the bill message is retried; resending the
    ones that did go out is harmless because recordings are idempotent.
    """
    sent = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal sent
        pending = {str(i): body for i, body in enumerate(batch)}
        for attempt in range(attempts):
            reply = sqs.send_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": i, "MessageBody": b} for i, b in pending.items()]
            )
            for ok in reply.get("Successful", []):
                pending.pop(ok["Id"], None)
            failed = reply.get("Failed", [])
            if not pending:
                break
            if any(f.get("SenderFault") for f in failed):
                codes = sorted({str(f.get("Code")) for f in failed})
                raise RuntimeError(f"RecordingQueue refused {len(pending)} message(s): {', '.join(codes)}")
            if attempt + 1 < attempts:
                sleep(min(2.0, 0.1 * 2**attempt))
        if pending:
            raise RuntimeError(f"{len(pending)} RecordingQueue message(s) still failing after {attempts} attempts")
        sent += len(batch)
        batch.clear()

    for body in bodies:
        batch.append(body)
        if len(batch) == SQS_BATCH:
            flush()
    if batch:
        flush()
    return sent
