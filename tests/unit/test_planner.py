"""exporter.planner: grid alignment, tiling, settle delay, catch-up bound, DST, backfill split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.planner import (
    ONE_SECOND,
    Window,
    floor_to_grid,
    initial_cursor,
    next_grid_start,
    plan_windows,
    settled_local,
    split_range,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def dt(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def assert_tiles(windows: list[Window], start: datetime, end: datetime) -> None:
    """The windows cover [start, end] exactly: no gap, no overlap, in order."""
    assert windows
    assert windows[0].begin == start
    assert windows[-1].end == end
    for previous, following in pairwise(windows):
        assert following.begin == previous.end + ONE_SECOND
    assert all(w.begin <= w.end for w in windows)


# ---------------------------------------------------------------------------- grid


def test_hourly_windows_align_to_the_grid_and_end_one_second_before_the_next() -> None:
    windows = plan_windows(dt("2026-11-21 00:00:00"), dt("2026-11-21 05:10:00"), 60, 48)
    assert [(w.begin_str, w.end_str) for w in windows] == [
        ("2026-11-21 00:00:00", "2026-11-21 00:59:59"),
        ("2026-11-21 01:00:00", "2026-11-21 01:59:59"),
        ("2026-11-21 02:00:00", "2026-11-21 02:59:59"),
        ("2026-11-21 03:00:00", "2026-11-21 03:59:59"),
        ("2026-11-21 04:00:00", "2026-11-21 04:59:59"),
    ]
    assert windows[-1].next_begin == dt("2026-11-21 05:00:00")


def test_an_off_grid_cursor_gets_a_short_first_window_then_the_grid() -> None:
    windows = plan_windows(dt("2026-11-21 10:17:00"), dt("2026-11-21 12:30:00"), 60, 48)
    assert [w.sk for w in windows] == [
        "2026-11-21 10:17:00|2026-11-21 10:59:59",
        "2026-11-21 11:00:00|2026-11-21 11:59:59",
    ]


def test_a_window_length_that_does_not_divide_a_day_restarts_at_midnight() -> None:
    windows = plan_windows(dt("2026-11-21 22:00:00"), dt("2026-11-22 02:00:00"), 100, 48)
    assert [w.sk for w in windows] == [
        "2026-11-21 22:00:00|2026-11-21 23:19:59",
        "2026-11-21 23:20:00|2026-11-21 23:59:59",  # shortened: the grid restarts at midnight
        "2026-11-22 00:00:00|2026-11-22 01:39:59",
    ]


def test_windows_longer_than_a_day_are_anchored_at_the_epoch() -> None:
    # 2026-11-21 is an even number of days after 1970-01-01
    assert floor_to_grid(dt("2026-11-22 13:00:00"), 2880) == dt("2026-11-21 00:00:00")
    assert floor_to_grid(dt("2026-11-21 00:00:00"), 2880) == dt("2026-11-21 00:00:00")
    assert next_grid_start(dt("2026-11-21 00:00:00"), 2880) == dt("2026-11-23 00:00:00")


def test_one_day_in_shanghai_is_24_hourly_windows_without_gap_or_overlap() -> None:
    windows = plan_windows(dt("2026-11-21 00:00:00"), dt("2026-11-22 00:00:00"), 60, 100)
    assert len(windows) == 24
    assert_tiles(windows, dt("2026-11-21 00:00:00"), dt("2026-11-21 23:59:59"))


@pytest.mark.parametrize(
    ("day", "label"),
    [("2026-03-08", "spring forward"), ("2026-11-01", "fall back")],
)
def test_dst_days_in_new_york_tile_the_wall_clock_day(day: str, label: str) -> None:
    start = dt(f"{day} 00:00:00")
    windows = plan_windows(start, start + timedelta(days=1), 60, 100)
    assert len(windows) == 24, label  # wall-clock hours: the skipped/repeated hour is one window
    assert_tiles(windows, start, start + timedelta(days=1) - ONE_SECOND)


def test_fall_back_hour_is_due_only_after_its_second_pass() -> None:
    cursor = dt("2026-11-01 01:00:00")  # 01:00-01:59:59 happens twice in New York that night
    first_pass = datetime(2026, 11, 1, 5, 59, tzinfo=UTC)  # 01:59 EDT
    second_pass = datetime(2026, 11, 1, 6, 59, tzinfo=UTC)  # 01:59 EST
    after = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)  # 02:00 EST
    assert plan_windows(cursor, settled_local(first_pass, NEW_YORK, 0), 60, 48) == []
    assert plan_windows(cursor, settled_local(second_pass, NEW_YORK, 0), 60, 48) == []
    assert [w.sk for w in plan_windows(cursor, settled_local(after, NEW_YORK, 0), 60, 48)] == [
        "2026-11-01 01:00:00|2026-11-01 01:59:59"
    ]


def test_spring_forward_hour_is_still_asked_for() -> None:
    cursor = dt("2026-03-08 02:00:00")  # does not exist on New York wall clocks
    now = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert [w.sk for w in plan_windows(cursor, settled_local(now, NEW_YORK, 0), 60, 48)] == [
        "2026-03-08 02:00:00|2026-03-08 02:59:59"
    ]


# ---------------------------------------------------------------------------- settle, start, bound


def test_settle_delay_holds_back_the_window_until_its_end_has_settled() -> None:
    cursor = dt("2026-11-21 17:00:00")
    just_before = datetime(2026, 11, 21, 10, 29, 59, tzinfo=UTC)  # 18:29:59 Shanghai, settled 17:59:59
    at = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)  # settled 18:00:00 == next window start
    assert settled_local(at, SHANGHAI, 30) == dt("2026-11-21 18:00:00")
    assert plan_windows(cursor, settled_local(just_before, SHANGHAI, 30), 60, 48) == []
    assert len(plan_windows(cursor, settled_local(at, SHANGHAI, 30), 60, 48)) == 1


def test_initial_cursor_starts_now_on_the_grid_or_at_export_start() -> None:
    settled = dt("2026-11-21 17:40:00")
    assert initial_cursor(settled, 60) == dt("2026-11-21 17:00:00")
    assert initial_cursor(settled, 15) == dt("2026-11-21 17:30:00")
    assert initial_cursor(settled, 60, dt("2026-01-01 08:30:00")) == dt("2026-01-01 08:30:00")


def test_catch_up_is_bounded_and_continues_where_it_stopped() -> None:
    settled = dt("2026-11-21 10:00:00")
    first = plan_windows(dt("2026-11-21 00:00:00"), settled, 60, 4)
    assert len(first) == 4
    rest = plan_windows(first[-1].next_begin, settled, 60, 48)
    assert len(rest) == 6
    assert_tiles(first + rest, dt("2026-11-21 00:00:00"), dt("2026-11-21 09:59:59"))


def test_nothing_is_planned_with_a_zero_bound() -> None:
    assert plan_windows(dt("2026-11-21 00:00:00"), dt("2026-11-22 00:00:00"), 60, 0) == []


# ---------------------------------------------------------------------------- backfill split


def test_four_days_split_into_three_days_minus_a_second_and_the_rest() -> None:
    windows, rest = split_range(dt("2026-11-01 00:00:00"), dt("2026-11-04 23:59:59"))
    assert rest is None
    assert [w.sk for w in windows] == [
        "2026-11-01 00:00:00|2026-11-03 23:59:59",
        "2026-11-04 00:00:00|2026-11-04 23:59:59",
    ]
    assert windows[0].end - windows[0].begin == timedelta(days=3) - ONE_SECOND


def test_split_of_exactly_three_days_is_one_window_and_a_point_range_too() -> None:
    windows, _ = split_range(dt("2026-11-01 00:00:00"), dt("2026-11-03 23:59:59"))
    assert len(windows) == 1
    point, _ = split_range(dt("2026-11-01 12:00:00"), dt("2026-11-01 12:00:00"))
    assert point == [Window(dt("2026-11-01 12:00:00"), dt("2026-11-01 12:00:00"))]


def test_split_bounded_returns_where_the_rest_begins() -> None:
    windows, rest = split_range(dt("2026-11-01 00:00:00"), dt("2026-11-10 23:59:59"), max_windows=2)
    assert len(windows) == 2
    assert rest == dt("2026-11-07 00:00:00")
    more, none = split_range(rest, dt("2026-11-10 23:59:59"))
    assert none is None
    assert_tiles(windows + more, dt("2026-11-01 00:00:00"), dt("2026-11-10 23:59:59"))


def test_split_rejects_an_inverted_range() -> None:
    with pytest.raises(ValueError, match="before"):
        split_range(dt("2026-11-02 00:00:00"), dt("2026-11-01 00:00:00"))


def test_window_rejects_aware_and_inverted_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="before"):
        Window(dt("2026-01-02 00:00:00"), dt("2026-01-01 00:00:00"))


def test_window_sort_key_round_trips() -> None:
    window = Window(dt("2026-11-01 00:00:00"), dt("2026-11-01 00:59:59"))
    assert Window.from_sk(window.sk) == window


# ---------------------------------------------------------------------------- properties

_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)).map(
    lambda d: d.replace(microsecond=0)
)


@settings(max_examples=200, deadline=None)
@given(
    begin=_times,
    span=st.integers(min_value=1, max_value=4 * 86400),
    whole=st.integers(min_value=0, max_value=60),
    part=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_split_tiles_the_range_exactly(begin: datetime, span: int, whole: int, part: float) -> None:
    end = begin + timedelta(seconds=whole * span + int(part * span))
    windows, rest = split_range(begin, end, max_span=timedelta(seconds=span))
    assert rest is None
    assert_tiles(windows, begin, end)
    assert all(w.end - w.begin <= timedelta(seconds=span) - ONE_SECOND for w in windows)
    assert all(w.end - w.begin == timedelta(seconds=span) - ONE_SECOND for w in windows[:-1])


@settings(max_examples=200, deadline=None)
@given(
    cursor=_times,
    minutes=st.sampled_from([5, 15, 30, 60, 90, 100, 360, 1440, 2880, 4320]),
    ahead=st.integers(min_value=0, max_value=20 * 86400),
    bound=st.integers(min_value=1, max_value=60),
)
def test_planned_windows_tile_from_the_cursor_on_the_grid(
    cursor: datetime, minutes: int, ahead: int, bound: int
) -> None:
    settled = cursor + timedelta(seconds=ahead)
    windows = plan_windows(cursor, settled, minutes, bound)
    assert len(windows) <= bound
    if not windows:
        assert next_grid_start(cursor, minutes) > settled
        return
    assert_tiles(windows, cursor, windows[-1].end)
    for window in windows:
        assert window.next_begin == next_grid_start(window.begin, minutes)  # ends on the grid
        assert window.next_begin <= settled  # only settled windows
        assert window.end - window.begin < timedelta(minutes=minutes)
    if len(windows) < bound:  # stopped because the next one is not due yet
        assert next_grid_start(windows[-1].next_begin, minutes) > settled
