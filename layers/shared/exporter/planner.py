"""Window planning: which tenant-local time ranges to ask CC-FS for (pure, no I/O).

A *window* is an inclusive range ``[begin, end]`` of tenant-local wall-clock seconds, the way
queryBillData takes it (``yyyy-MM-dd HH:mm:ss``, both ends included). Consecutive windows tile
time exactly: ``next.begin == previous.end + 1 s``, so nothing is asked twice and nothing is
skipped.

Scheduled windows sit on a grid: local midnight + k * ``window_minutes``. When the window length
does not divide a day, the last window of each day is shortened so that every day restarts at
midnight (the grid never drifts). Windows longer than a day are anchored at 1970-01-01 00:00
local instead. A cursor that is off the grid (an ``EXPORT_START_TIME`` of 10:17) gives one short
first window up to the next grid point.

Daylight saving time: planning works on **naive local wall-clock datetimes**, because that is
what CC-FS receives and interprets. The tiling is therefore gap- and overlap-free on the wall
clock. On a spring-forward day the window covering the skipped hour (e.g. 02:00-02:59:59 in
America/New_York) is still asked for and simply holds no calls. On a fall-back day the window
01:00-01:59:59 covers *both* passes of that hour; it becomes due only once the wall clock reaches
02:00 + settle, i.e. after the second pass, so no call of either pass is missed. "Due" compares
wall-clock values: ``settled_local`` is the real instant ``now - settle`` shown on the tenant's
wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ccfs.models import MAX_WINDOW, TIME_FORMAT

__all__ = [
    "ONE_SECOND",
    "Window",
    "floor_to_grid",
    "initial_cursor",
    "next_grid_start",
    "plan_windows",
    "settled_local",
    "split_range",
    "to_local",
]

ONE_SECOND = timedelta(seconds=1)
DAY_MINUTES = 24 * 60
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, order=True)
class Window:
    """An inclusive tenant-local range ``[begin, end]`` (naive datetimes, second precision)."""

    begin: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.begin.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window times are tenant-local and must be naive")
        if self.end < self.begin:
            raise ValueError("window end is before its begin")

    @property
    def next_begin(self) -> datetime:
        """Where the following window starts (``end + 1 s``)."""
        return self.end + ONE_SECOND

    @property
    def begin_str(self) -> str:
        return self.begin.strftime(TIME_FORMAT)

    @property
    def end_str(self) -> str:
        return self.end.strftime(TIME_FORMAT)

    @property
    def sk(self) -> str:
        """The window item's sort key, ``{begin}|{end}``."""
        return f"{self.begin_str}|{self.end_str}"

    @classmethod
    def from_sk(cls, sk: str) -> Window:
        begin, end = sk.split("|", 1)
        return cls(datetime.strptime(begin, TIME_FORMAT), datetime.strptime(end, TIME_FORMAT))


def _check_minutes(window_minutes: int) -> None:
    if window_minutes < 1:
        raise ValueError("window_minutes must be >= 1")


def _truncate(value: datetime) -> datetime:
    return value.replace(microsecond=0, tzinfo=None) if value.tzinfo is None else value.replace(microsecond=0)


def floor_to_grid(value: datetime, window_minutes: int) -> datetime:
    """The grid point at or before ``value`` (naive local)."""
    _check_minutes(window_minutes)
    value = _truncate(value)
    step = timedelta(minutes=window_minutes)
    if window_minutes <= DAY_MINUTES:
        midnight = value.replace(hour=0, minute=0, second=0)
        return midnight + step * ((value - midnight) // step)
    return _EPOCH + step * ((value - _EPOCH) // step)


def next_grid_start(value: datetime, window_minutes: int) -> datetime:
    """The first grid point strictly after ``value`` (naive local)."""
    floor = floor_to_grid(value, window_minutes)
    candidate = floor + timedelta(minutes=window_minutes)
    if window_minutes <= DAY_MINUTES:
        next_midnight = floor.replace(hour=0, minute=0, second=0) + timedelta(days=1)
        candidate = min(candidate, next_midnight)
    return candidate


def to_local(now_utc: datetime, zone: ZoneInfo) -> datetime:
    """An aware instant as naive tenant-local wall-clock time, to the second."""
    if now_utc.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now_utc.astimezone(zone).replace(tzinfo=None, microsecond=0)


def settled_local(now_utc: datetime, zone: ZoneInfo, settle_minutes: int) -> datetime:
    """The tenant wall clock ``settle_minutes`` ago: data up to here is considered complete."""
    return to_local(now_utc.astimezone(UTC) - timedelta(minutes=settle_minutes), zone)


def initial_cursor(settled: datetime, window_minutes: int, export_start: datetime | None = None) -> datetime:
    """Where a tenant without a cursor starts: ``export_start`` if configured, else the grid point
    at or before ``settled`` (start from now, no history)."""
    if export_start is not None:
        return _truncate(export_start)
    return floor_to_grid(settled, window_minutes)


def plan_windows(next_begin: datetime, settled: datetime, window_minutes: int, max_windows: int) -> list[Window]:
    """The due windows from ``next_begin`` on: at most ``max_windows``, each ending one second
    before the next grid point, and only those whose next grid point is ``<= settled``.

    The rest waits for the next call (catch-up is bounded per invocation).
    """
    if max_windows < 1:
        return []
    windows: list[Window] = []
    begin = _truncate(next_begin)
    while len(windows) < max_windows:
        following = next_grid_start(begin, window_minutes)
        if following > settled:
            break
        windows.append(Window(begin, following - ONE_SECOND))
        begin = following
    return windows


def split_range(
    begin: datetime, end: datetime, max_span: timedelta = MAX_WINDOW, max_windows: int | None = None
) -> tuple[list[Window], datetime | None]:
    """Split the inclusive range ``[begin, end]`` into windows starting at ``begin``, each at most
    ``max_span`` long minus one second (``end = next begin - 1 s``); the last ends at ``end``.

    Returns ``(windows, rest_begin)``: with ``max_windows`` set and more windows needed,
    ``rest_begin`` is where the remaining range ``[rest_begin, end]`` starts, else ``None``.
    """
    begin, end = _truncate(begin), _truncate(end)
    if end < begin:
        raise ValueError("end is before begin")
    if max_span < ONE_SECOND:
        raise ValueError("max_span must be at least one second")
    windows: list[Window] = []
    cursor = begin
    while cursor <= end:
        if max_windows is not None and len(windows) >= max_windows:
            return windows, cursor
        window_end = min(cursor + max_span - ONE_SECOND, end)
        windows.append(Window(cursor, window_end))
        cursor = window_end + ONE_SECOND
    return windows, None
