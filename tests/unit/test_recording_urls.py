"""Matching pre-signed URLs to index rows (issue 12): pick_url / pick_message_url, and the bill step's
ordinal/count/ordinalCertain computed from a call's index rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.bill_fanout import Recordings, add_recording, recording_messages
from exporter.messages import RecordingMessage
from exporter.recordings import pick_message_url, pick_url

UUID_A = "https://obs.example.com/ccfs/record/dev/13ddcde6-aaaa-4000-8000-000000000001?Signature=s"
UUID_B = "https://obs.example.com/ccfs/record/dev/13ddcde6-bbbb-4000-8000-000000000002?Signature=s"
NAMED_OTHER = "https://obs.example.com/r/0903380.wav?Signature=s"
NAMED_MINE = "https://obs.example.com/r/0903379.wav?Signature=s"
MINE = "/10/1/record/100/0903379.wav"


def test_a_url_naming_the_file_wins_whatever_its_place():
    assert pick_url([UUID_A, NAMED_MINE], MINE, 1, 2) == NAMED_MINE
    assert pick_url([NAMED_MINE, UUID_A], MINE, 2, 2, ordinal_certain=False) == NAMED_MINE


def test_name_free_urls_are_taken_by_ordinal_when_the_count_matches_and_the_place_is_certain():
    assert pick_url([UUID_A, UUID_B], MINE, 1, 2) == UUID_A
    assert pick_url([UUID_A, UUID_B], MINE, 2, 2) == UUID_B
    assert pick_url([UUID_A], MINE, 1, 1) == UUID_A


@pytest.mark.parametrize(
    ("urls", "ordinal", "count", "certain"),
    [
        pytest.param([UUID_A], 2, 2, True, id="one-url-two-recordings"),
        pytest.param([UUID_A, UUID_B], 1, 3, True, id="fewer-urls-than-rows"),
        pytest.param([UUID_A, UUID_B], 2, 1, True, id="more-urls-than-rows"),
        pytest.param([UUID_A, UUID_B], 1, 2, False, id="same-begin-and-end"),
        pytest.param([UUID_A, NAMED_OTHER], 2, 2, True, id="ordinal-url-names-another-file"),
    ],
)
def test_anything_uncertain_is_left_to_the_fallback(urls, ordinal, count, certain):
    assert pick_url(urls, MINE, ordinal, count, ordinal_certain=certain) is None


def message(**changes: Any) -> RecordingMessage:
    base = {
        "responseId": "r1",
        "tenant": "acct001",
        "callId": "1530497000-101",
        "callBegin": "2018-07-02 09:15:02",
        "callEnd": "2018-07-02 09:18:45",
        "fileName": MINE,
    }
    return RecordingMessage.model_validate({**base, **changes})


def test_message_uses_its_own_window_first_then_the_whole_call():
    own = message(ordinal=2, count=2, ordinalCertain=True, urlOrdinal=1, urlCount=1)
    assert pick_message_url([UUID_B], own) == UUID_B  # CC-FS answered only this recording's window
    assert pick_message_url([UUID_A, UUID_B], own) == UUID_B  # CC-FS answered the whole call
    assert pick_message_url([UUID_A, UUID_B, UUID_A], own) is None


def test_message_without_certainty_never_matches_by_position():
    older = message(ordinal=2, count=2)  # a message from before ordinalCertain existed
    assert older.ordinalCertain is False
    assert pick_message_url([UUID_A, UUID_B], older) is None
    assert pick_message_url([UUID_A], message(ordinal=1, count=1)) == UUID_A  # the call's only recording


def _messages(tmp_path: Path, rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    handle = (tmp_path / "rec.jsonl").open("w", encoding="utf-8")
    recordings = Recordings(str(tmp_path / "rec.jsonl"), handle)
    for row in rows:
        descriptor = {
            "callId": row["call_id"],
            "fileName": row["file_name"],
            "callBegin": row["call_begin"] or "2018-07-02 00:00:00",
            "callEnd": row["call_end"] or row["call_begin"] or "2018-07-02 00:00:00",
            "accountId": "acct001",
            "callDate": "2018-07-02",
            "originalFileName": "",
        }
        add_recording(recordings, descriptor, row)
    handle.close()
    return {m["fileName"]: m for m in map(json.loads, recording_messages(recordings, "r1", "acct001"))}


def row(file_name: str, begin: str, end: str, call_id: str = "c1") -> dict[str, str]:
    return {"call_id": call_id, "file_name": file_name, "call_begin": begin, "call_end": end}


def test_rows_are_ordered_by_begin_then_end_then_name(tmp_path):
    got = _messages(
        tmp_path,
        [
            row("/r/a.wav", "2018-07-02 09:00:00", "2018-07-02 09:10:00"),  # same begin, later end: second
            row("/r/z.wav", "2018-07-02 09:00:00", "2018-07-02 09:05:00"),  # same begin, earlier end: first
            row("/r/m.wav", "2018-07-02 09:20:00", "2018-07-02 09:30:00"),
        ],
    )
    assert [(got[n]["ordinal"], got[n]["count"]) for n in ("/r/z.wav", "/r/a.wav", "/r/m.wav")] == [
        (1, 3),
        (2, 3),
        (3, 3),
    ]
    assert all(m["ordinalCertain"] for m in got.values())
    # own windows: z's [09:00, 09:05] also holds a (begins 09:00); a's holds z; m's only m
    assert [(got[n]["urlOrdinal"], got[n]["urlCount"]) for n in ("/r/z.wav", "/r/a.wav", "/r/m.wav")] == [
        (1, 2),
        (2, 2),
        (1, 1),
    ]


def test_equal_begin_and_end_make_those_places_uncertain(tmp_path):
    got = _messages(
        tmp_path,
        [
            row("/r/a.wav", "2018-07-02 09:00:00", "2018-07-02 09:05:00"),
            row("/r/b.wav", "2018-07-02 09:00:00", "2018-07-02 09:05:00"),
            row("/r/c.wav", "2018-07-02 09:10:00", "2018-07-02 09:15:00"),
        ],
    )
    assert (got["/r/a.wav"]["ordinalCertain"], got["/r/b.wav"]["ordinalCertain"]) == (False, False)
    assert got["/r/c.wav"]["ordinalCertain"] is True and got["/r/c.wav"]["ordinal"] == 3


def test_a_row_without_times_makes_the_whole_call_uncertain(tmp_path):
    got = _messages(
        tmp_path,
        [
            row("/r/a.wav", "2018-07-02 09:00:00", "2018-07-02 09:05:00"),
            row("/r/b.wav", "2018-07-02 09:10:00", ""),
            row("/r/c.wav", "2018-07-02 09:20:00", "2018-07-02 09:25:00", call_id="c2"),
        ],
    )
    assert not got["/r/a.wav"]["ordinalCertain"] and not got["/r/b.wav"]["ordinalCertain"]
    assert got["/r/c.wav"]["ordinalCertain"]  # another call is unaffected


def test_the_only_url_of_a_one_recording_call_may_carry_any_object_name():
    other_name = "https://obs.example.com/lss/2043295.V3?Signature=s"
    assert pick_url([other_name], MINE, 1, 1) == other_name
    assert pick_message_url([other_name], message(ordinal=1, count=1, urlOrdinal=1, urlCount=1)) == other_name
    # but in a call with two recordings, the one URL of this window naming the other file is refused
    two = message(ordinal=1, count=2, ordinalCertain=True, urlOrdinal=1, urlCount=1)
    assert pick_message_url([NAMED_OTHER], two) is None
    assert pick_message_url([NAMED_MINE], two) == NAMED_MINE
    assert pick_message_url([UUID_A], two) == UUID_A
