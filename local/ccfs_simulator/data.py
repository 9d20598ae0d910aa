"""The synthetic call center behind the simulator: tenants, calls, CDR legs, recordings.

Everything derives from ``random.Random(f"{seed}:{account}:{day}")``, so a day of one tenant is the
same in every run and independent of which other days or tenants were looked at first. Times are
naive tenant-local datetimes (as in the bill files); call ids carry the epoch of the first leg.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .columns import CDR_HEADER, INDEX_HEADER
from .config import TenantSpec

__all__ = ["CDR_HEADER", "INDEX_HEADER", "Call", "CallCenter", "Recording"]

# Synthetic device types (the vendor's table is not public): 1 skill queue, 2 agent, 3 IVR.
DEVICE_QUEUE, DEVICE_AGENT, DEVICE_IVR = "1", "2", "3"
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 12, 10, 12, 14, 14, 12, 10, 8, 6, 4, 3, 2, 1)
_CALL_ID_RE = re.compile(r"^(?P<epoch>\d{9,11})-(?P<n>\d{1,13})$")
_FILE_NAME_RE = re.compile(r"^/10/(?P<cc>\d+)/record/(?P<vdn>\d+)/(?P<agent>\d+)/(?P<mmdd>\d{4})(?P<n>\d{3,})\.wav$")
_ORIGINAL_RE = re.compile(r"^X:/(?P<vdn>\d+)/0/(?P<ymd>\d{8})/(?P<agent>\d+)/(?P<n>\d+)\.V3$", re.IGNORECASE)
_VDN_BASE = 17
_CC_ID = "1"


@dataclass(eq=False)
class Recording:
    account_id: str
    call_id: str
    index: int  # 0-based, in time order within the call
    day: date  # the day of the call (tenant-local date of its first leg)
    key: str  # keys the sample generator
    file_name: str
    original_file_name: str
    call_begin: datetime
    call_end: datetime
    size: int
    cc_id: str
    row: dict[str, str]  # the recording-index row


@dataclass(eq=False)
class Call:
    account_id: str
    call_id: str
    day: date
    begin: datetime  # call_begin of the first leg, tenant-local
    end: datetime
    call_type: str  # "0" inbound, "1" outbound
    answered: bool
    agent_id: str
    legs: list[dict[str, str]]  # CDR rows, in call_id_num order (1, 2, ..., -1)
    recordings: list[Recording] = field(default_factory=list)

    @property
    def index_rows(self) -> list[dict[str, str]]:
        return [r.row for r in self.recordings]


@dataclass
class _Day:
    calls: list[Call]
    by_call_id: dict[str, Call]
    by_file_name: dict[str, Recording]
    by_original: dict[str, Recording]


def _t(value: datetime | None) -> str:
    # Protocol §4: `yyyy-MM-dd HH:mm:ss`, tenant-local; formatted here, not by the client's ccfs.models.
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else ""


def _mobile(rng: random.Random) -> str:
    return rng.choice(("13", "15", "18", "17")) + "".join(rng.choice("0123456789") for _ in range(9))


class CallCenter:
    """Generates (and caches) the calls of each tenant and day on demand. Thread-safe."""

    def __init__(
        self,
        seed: int,
        tenants: list[TenantSpec],
        base_date: date,
        days: int,
        min_bytes: int,
        max_bytes: int,
        big_recordings: dict[str, int] | None = None,
        multi_recording_rate: float = 0.10,
        shared_name_rate: float = 0.0,
    ) -> None:
        self.seed = seed
        self.multi_recording_rate = multi_recording_rate
        self.shared_name_rate = shared_name_rate
        self.tenants = list(tenants)
        self.base_date = base_date
        self.days = days
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self._big = dict(big_recordings or {})
        self._index = {t.account_id: i for i, t in enumerate(self.tenants)}
        self._zones = {t.account_id: ZoneInfo(t.tz) for t in self.tenants}
        self.developer = str(10**18 + random.Random(f"developer:{seed}").randrange(10**17))
        self._cache: dict[tuple[str, date], _Day] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lookups

    def tenant(self, account_id: str) -> TenantSpec | None:
        index = self._index.get(account_id)
        return None if index is None else self.tenants[index]

    def zone(self, account_id: str) -> ZoneInfo:
        return self._zones[account_id]

    def vdn(self, account_id: str) -> str:
        return str(_VDN_BASE + self._index[account_id])

    def has_day(self, day: date) -> bool:
        return self.base_date <= day < self.base_date + timedelta(days=self.days)

    def set_big_recording(self, call_id: str, size: int) -> None:
        with self._lock:
            self._big[call_id] = size
            self._cache.clear()

    def calls(self, account_id: str, day: date) -> list[Call]:
        return self._day(account_id, day).calls

    def calls_between(self, account_id: str, begin: datetime, end: datetime) -> list[Call]:
        """Calls whose first leg begins within [begin, end] (tenant-local, inclusive)."""
        found: list[Call] = []
        day = begin.date()
        while day <= end.date():
            found.extend(c for c in self.calls(account_id, day) if begin <= c.begin <= end)
            day += timedelta(days=1)
        return found

    def find_call(self, call_id: str) -> list[Call]:
        """The call with this id in every tenant (ids are unique across tenants: at most one)."""
        match = _CALL_ID_RE.match(call_id)
        if not match:
            return []
        epoch = int(match["epoch"])
        found = []
        for tenant in self.tenants:
            day = datetime.fromtimestamp(epoch, self._zones[tenant.account_id]).date()
            call = self._day(tenant.account_id, day).by_call_id.get(call_id)
            if call is not None:
                found.append(call)
        return found

    def find_by_file_name(self, file_name: str) -> Recording | None:
        match = _FILE_NAME_RE.match(file_name)
        if not match:
            return None
        account_id = self._account_for_vdn(match["vdn"])
        if account_id is None:
            return None
        month, dom = int(match["mmdd"][:2]), int(match["mmdd"][2:])
        day = self.base_date
        while self.has_day(day):
            if (day.month, day.day) == (month, dom):
                recording = self._day(account_id, day).by_file_name.get(file_name)
                if recording is not None:
                    return recording
            day += timedelta(days=1)
        return None

    def find_by_original(self, name: str) -> Recording | None:
        """``name`` is an original_file_name with ``\\`` or ``/`` separators."""
        normalized = name.replace("\\", "/")
        match = _ORIGINAL_RE.match(normalized)
        if not match:
            return None
        account_id = self._account_for_vdn(match["vdn"])
        try:
            day = datetime.strptime(match["ymd"], "%Y%m%d").date()
        except ValueError:
            return None
        if account_id is None:
            return None
        return self._day(account_id, day).by_original.get(normalized.upper())

    def iter_recordings(self, calls: list[Call]) -> Iterator[Recording]:
        for call in calls:
            yield from call.recordings

    def _account_for_vdn(self, vdn: str) -> str | None:
        index = int(vdn) - _VDN_BASE
        return self.tenants[index].account_id if 0 <= index < len(self.tenants) else None

    # ------------------------------------------------------------------ generation

    def _day(self, account_id: str, day: date) -> _Day:
        key = (account_id, day)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                calls = self._generate(account_id, day) if self.has_day(day) else []
                cached = _Day(
                    calls=calls,
                    by_call_id={c.call_id: c for c in calls},
                    by_file_name={r.file_name: r for c in calls for r in c.recordings},
                    by_original={
                        r.original_file_name.replace("\\", "/").upper(): r for c in calls for r in c.recordings
                    },
                )
                self._cache[key] = cached
            return cached

    def _generate(self, account_id: str, day: date) -> list[Call]:
        tenant = self.tenants[self._index[account_id]]
        tenant_index = self._index[account_id]
        zone = self._zones[account_id]
        rng = random.Random(f"{self.seed}:{account_id}:{day.isoformat()}")
        vdn = self.vdn(account_id)
        access_code = f"4008{int(vdn):03d}{tenant_index % 10}"
        midnight = datetime.combine(day, time())
        offsets = sorted(
            hour * 3600 + rng.randrange(3600)
            for hour in rng.choices(range(24), weights=_HOUR_WEIGHTS, k=tenant.calls_per_day)
        )
        counter = rng.randrange(100, 900)
        calls: list[Call] = []
        for seq, offset in enumerate(offsets, start=1):
            begin = midnight + timedelta(seconds=offset)
            epoch = int(begin.replace(tzinfo=zone).astimezone(UTC).timestamp())
            call_id = f"{epoch}-{tenant_index * 100_000 + seq}"
            agent_id = str(10001 + rng.randrange(tenant.agents))
            skill = str(1 + rng.randrange(4))
            customer = _mobile(rng)
            outbound = rng.random() < 0.15
            common = {
                "developer": self.developer,
                "account_id": account_id,
                "cc_id": _CC_ID,
                "call_id": call_id,
                "vdn_id": vdn,
                "caller_no": access_code if outbound else customer,
                "callee_no": customer if outbound else access_code,
            }
            if outbound:
                legs, talk = self._outbound_legs(rng, common, begin, agent_id)
            else:
                legs, talk = self._inbound_legs(rng, common, begin, agent_id, skill)
            call = Call(
                account_id=account_id,
                call_id=call_id,
                day=day,
                begin=begin,
                end=max(datetime.strptime(leg["call_end"], "%Y-%m-%d %H:%M:%S") for leg in legs),
                call_type="1" if outbound else "0",
                answered=talk is not None,
                agent_id=agent_id if talk is not None else "",
                legs=legs,
            )
            if talk is not None and rng.random() < 0.81:
                segments = [talk]
                talk_begin, talk_end = talk
                length = (talk_end - talk_begin).total_seconds()
                if length >= 40 and rng.random() < self.multi_recording_rate:
                    cut = talk_begin + timedelta(seconds=rng.randrange(10, int(length) - 20))
                    resume = cut + timedelta(seconds=rng.randrange(5, 15))
                    segments = [(talk_begin, cut), (resume, talk_end)]
                # A two-segment call whose second segment an agent in another directory recorded under
                # the same file name (one file per agent: .../13533/0903379.wav, .../13534/0903379.wav).
                # Drawn only when enabled, so the default data stays what it always was.
                shared = len(segments) > 1 and self.shared_name_rate > 0 and rng.random() < self.shared_name_rate
                first = counter
                for index, (seg_begin, seg_end) in enumerate(segments):
                    directory, number = agent_id, counter
                    if shared and index > 0:
                        directory, number = str(int(agent_id) + 5000), first
                    call.recordings.append(
                        self._recording(
                            rng, common, call, index, seg_begin, seg_end, agent_id, skill, number, directory
                        )
                    )
                    counter += 1
            calls.append(call)
        return calls

    def _recording(
        self,
        rng: random.Random,
        common: dict[str, str],
        call: Call,
        index: int,
        begin: datetime,
        end: datetime,
        agent_id: str,
        skill: str,
        counter: int,
        directory: str | None = None,
    ) -> Recording:
        natural = rng.randint(self.min_bytes, self.max_bytes)
        if natural % 2:  # keep generated files strictly valid RIFF (even sizes)
            natural += 1 if natural < self.max_bytes else -1 if natural > self.min_bytes else 0
        size = self._big.get(call.call_id, natural)
        vdn = common["vdn_id"]
        folder = directory or agent_id
        file_name = f"/10/{_CC_ID}/record/{vdn}/{folder}/{call.day:%m%d}{counter:03d}.wav"
        original = f"X:\\{vdn}\\0\\{call.day:%Y%m%d}\\{folder}\\{2_000_000 + counter}.V3"
        row = {
            "developer": common["developer"],
            "account_id": call.account_id,
            "cc_id": _CC_ID,
            "agent_id": agent_id,
            "call_id": call.call_id,
            "caller_no": common["caller_no"],
            "callee_no": common["callee_no"],
            "call_begin": _t(begin),
            "call_end": _t(end),
            "file_name": file_name,
            "task_status": "1",
            "task_result": "0",
            "original_file_name": original,
            "vdn_id": vdn,
            "call_type": call.call_type,
            "media_type": "5",
            "user_wanted_skill_id": "" if call.call_type == "1" else skill,
            "current_skill_id": "" if call.call_type == "1" else skill,
        }
        return Recording(
            account_id=call.account_id,
            call_id=call.call_id,
            index=index,
            day=call.day,
            key=f"{self.seed}:{call.account_id}:{call.call_id}:{index}",
            file_name=file_name,
            original_file_name=original,
            call_begin=begin,
            call_end=end,
            size=size,
            cc_id=_CC_ID,
            row=row,
        )

    @staticmethod
    def _leg(
        common: dict[str, str],
        *,
        agent_id: str = "",
        wait: tuple[datetime, datetime] | None,
        ack: tuple[datetime, datetime] | None,
        call: tuple[datetime, datetime],
        device: tuple[str, str],
        pre_device: tuple[str, str],
        release_cause: str,
        leave_reason: str,
    ) -> dict[str, str]:
        return {
            "developer": common["developer"],
            "account_id": common["account_id"],
            "cc_id": common["cc_id"],
            "agent_id": agent_id,
            "call_id": common["call_id"],
            "caller_no": common["caller_no"],
            "callee_no": common["callee_no"],
            "wait_begin": _t(wait[0] if wait else None),
            "wait_end": _t(wait[1] if wait else None),
            "ack_begin": _t(ack[0] if ack else None),
            "ack_end": _t(ack[1] if ack else None),
            "call_begin": _t(call[0]),
            "call_end": _t(call[1]),
            "device_type": device[0],
            "device_no": device[1],
            "call_type": "",  # filled by the caller
            "release_cause": release_cause,
            "call_id_num": "",  # numbered by _number
            "vdn_id": common["vdn_id"],
            "pre_device_type": pre_device[0],
            "pre_device_no": pre_device[1],
            "leave_reason": leave_reason,
        }

    @staticmethod
    def _number(legs: list[dict[str, str]], call_type: str) -> list[dict[str, str]]:
        for position, leg in enumerate(legs, start=1):
            leg["call_id_num"] = "-1" if position == len(legs) else str(position)
            leg["call_type"] = call_type
        return legs

    def _inbound_legs(
        self, rng: random.Random, common: dict[str, str], t0: datetime, agent_id: str, skill: str
    ) -> tuple[list[dict[str, str]], tuple[datetime, datetime] | None]:
        ivr_no = str(100 + rng.randrange(3))
        t1 = t0 + timedelta(seconds=rng.randint(8, 90))
        fate = rng.random()
        legs = [
            self._leg(
                common,
                wait=(t0, t0),
                ack=(t0, t0),
                call=(t0, t1),
                device=(DEVICE_IVR, ivr_no),
                pre_device=("", ""),
                release_cause="1" if fate < 0.05 else "0",
                leave_reason="1" if fate < 0.05 else "",
            )
        ]
        if fate < 0.05:  # caller hung up in the IVR
            return self._number(legs, "0"), None
        t2 = t1 + timedelta(seconds=rng.randint(2, 180))
        abandoned = fate < 0.15
        legs.append(
            self._leg(
                common,
                wait=(t1, t2),
                ack=None,
                call=(t1, t2),
                device=(DEVICE_QUEUE, skill),
                pre_device=(DEVICE_IVR, ivr_no),
                release_cause="1" if abandoned else "0",
                leave_reason="3" if abandoned else "",
            )
        )
        if abandoned:  # caller gave up waiting in the queue
            return self._number(legs, "0"), None
        ring_end = t2 + timedelta(seconds=rng.randint(2, 15))
        t3 = ring_end + timedelta(seconds=rng.randint(20, 900))
        legs.append(
            self._leg(
                common,
                agent_id=agent_id,
                wait=(t2, ring_end),
                ack=(t2, ring_end),
                call=(ring_end, t3),
                device=(DEVICE_AGENT, agent_id),
                pre_device=(DEVICE_QUEUE, skill),
                release_cause=rng.choice(("16", "16", "16", "31")),
                leave_reason=rng.choice(("1", "2")),
            )
        )
        return self._number(legs, "0"), (ring_end, t3)

    def _outbound_legs(
        self, rng: random.Random, common: dict[str, str], t0: datetime, agent_id: str
    ) -> tuple[list[dict[str, str]], tuple[datetime, datetime] | None]:
        ring_end = t0 + timedelta(seconds=rng.randint(3, 25))
        answered = rng.random() < 0.9
        t3 = ring_end + timedelta(seconds=rng.randint(20, 600)) if answered else ring_end
        leg = self._leg(
            common,
            agent_id=agent_id,
            wait=(t0, ring_end),
            ack=(t0, ring_end) if answered else None,
            call=(t0, t3),
            device=(DEVICE_AGENT, agent_id),
            pre_device=("", ""),
            release_cause=rng.choice(("16", "16", "31")) if answered else rng.choice(("17", "19")),
            leave_reason=rng.choice(("1", "2")) if answered else "4",
        )
        return self._number([leg], "1"), ((ring_end, t3) if answered else None)
