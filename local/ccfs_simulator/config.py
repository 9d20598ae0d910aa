"""Configuration of the CC-FS simulator: tenants, fault knobs and server settings.

Plain dataclasses so tests, the CLI and the local stack build them the same way. ``Faults`` is
replaced as a whole at runtime (``Simulator.set_faults``), never mutated in place by the server.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "PROFILES",
    "RESPONSE_ID_STYLES",
    "URL_LIST_STYLES",
    "URL_NAMINGS",
    "URL_PLACEMENTS",
    "Faults",
    "SimulatorConfig",
    "TenantSpec",
]

_RATES = (
    "error_rate",
    "reset_rate",
    "throttle_rate",
    "not_found_rate",
    "expired_url_rate",
    "duplicate_callback_rate",
    "lost_callback_rate",
    "bad_signature_callback_rate",
    "unknown_code_rate",
    "late_recording_rate",
)
URL_LIST_STYLES = ("array", "comma", "semicolon", "space", "newline")
URL_PLACEMENTS = ("resultData", "top")
URL_NAMINGS = ("uuid", "name")
RESPONSE_ID_STYLES = ("hex32", "uuid", "short", "mixed")


@dataclass
class TenantSpec:
    """One tenant space (``accountId``) of the synthetic call center."""

    account_id: str
    tz: str = "Asia/Shanghai"
    calls_per_day: int = 200
    agents: int = 20
    # The tenant's own developer account (seed 000: "the developer account (appId) must correspond
    # to the enterprise account (accountId)"). None: the simulator's default ak/sk owns the tenant.
    ak: str | None = None
    sk: str | None = field(default=None, repr=False)

    def validate(self) -> None:
        if not 1 <= len(self.account_id) <= 20:
            raise ValueError(f"account_id must be 1-20 characters: {self.account_id!r}")
        if (self.ak is None) != (self.sk is None) or self.ak == "" or self.sk == "":
            raise ValueError(f"tenant {self.account_id}: give both ak and sk (its own developer account) or neither")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.tz!r}") from None
        if not 0 <= self.calls_per_day <= 99_999:
            raise ValueError("calls_per_day must be 0..99999")
        if not 1 <= self.agents <= 9_000:
            raise ValueError("agents must be 1..9000")


@dataclass
class Faults:
    """Fault injection. Rates are probabilities 0..1 drawn from streams seeded by ``fault_seed``.

    Every :meth:`Simulator.set_faults` restarts the streams, so a given sequence of requests meets
    the same faults run after run.
    """

    latency_ms: float = 0
    error_rate: float = 0  # HTTP 500/503 on CC-FS operations
    reset_rate: float = 0  # connection cut mid-body on binary downloads (ZIP, WAV, OBS GET)
    throttle_rate: float = 0  # 0300008 on downloads, 0300009 on queries ...
    throttle_burst: int = 3  # ... for this many consecutive replies of that kind
    not_found_calls: set[str] = field(default_factory=set)  # 0300012 from getRecordFileUrlFromObs
    not_found_rate: float = 0  # same, at random
    expired_url_rate: float = 0  # pre-signed URLs handed out already expired
    duplicate_callback_rate: float = 0  # an acknowledged callback is sent once more
    lost_callback_rate: float = 0  # the callback is never sent
    bad_signature_callback_rate: float = 0  # one badly signed attempt before the good one
    clock_skew_seconds: float = 0  # added to the simulator's own signing timestamps (callbacks)
    fault_seed: int = 7
    unknown_code_rate: float = 0  # an undocumented resultCode (UNKNOWN_CODE) on CC-FS operations
    # Seed 001: recordings reach CC-FS "by a scheduled task". This share of recordings (chosen per
    # recording by fault_seed, the same run after run) is not synced yet when it is first asked for:
    # 0300012 from every recording operation until sync_lag_seconds after that first request.
    late_recording_rate: float = 0
    sync_lag_seconds: float = 0

    def validate(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.sync_lag_seconds < 0:
            raise ValueError("sync_lag_seconds must be >= 0")
        if self.throttle_burst < 1:
            raise ValueError("throttle_burst must be >= 1")

    def with_changes(self, **changes: Any) -> Faults:
        """A validated copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
        if "not_found_calls" in changes:
            changes["not_found_calls"] = set(changes["not_found_calls"] or ())
        updated = replace(self, **changes)
        updated.validate()
        return updated

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["not_found_calls"] = sorted(self.not_found_calls)
        return data


PROFILES: dict[str, Faults] = {
    "none": Faults(),
    "flaky": Faults(
        latency_ms=20,
        error_rate=0.05,
        reset_rate=0.02,
        throttle_rate=0.03,
        expired_url_rate=0.02,
        duplicate_callback_rate=0.1,
        late_recording_rate=0.05,
        sync_lag_seconds=5,
    ),
    "chaos": Faults(
        latency_ms=50,
        error_rate=0.2,
        reset_rate=0.1,
        throttle_rate=0.1,
        not_found_rate=0.05,
        expired_url_rate=0.1,
        duplicate_callback_rate=0.3,
        lost_callback_rate=0.1,
        bad_signature_callback_rate=0.1,
    ),
}


@dataclass
class SimulatorConfig:
    seed: int = 1
    tenants: list[TenantSpec] = field(default_factory=lambda: [TenantSpec("acct001")])
    ak: str = "demo-ak"
    sk: str = field(default_factory=lambda: secrets.token_hex(16))
    # More ak -> sk pairs the server accepts (bill files belong to the ak that asked for them).
    extra_keys: dict[str, str] = field(default_factory=dict)
    tls: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    max_skew: int = 900  # seconds of clock skew the auth-v2 verifier tolerates
    callback_delay: float = 0.0
    callback_retry_interval: float = 600.0
    callback_max_tries: int = 6
    callback_timeout: float = 10.0
    callback_verify: bool | str = True  # True: system CAs; str: a CA bundle path; False: no check
    # Host names the TLS certificates carry. ``ccfs_name``: added to CC-FS's certificate (besides
    # 127.0.0.1, localhost, ::1). ``obs_name``: when set, the object store is a server of its own (own
    # port, own CA, a certificate for that name only), as OBS or an LSS beside CC-FS are, and the
    # pre-signed URLs name it; None: CC-FS's server serves it under CC-FS's address and CA.
    ccfs_name: str | None = None
    obs_name: str | None = None
    # The port written into pre-signed URLs (443: none), for a network that maps {obs_name}:443 to
    # the object store's real port; None: the port it listens on.
    obs_url_port: int | None = None
    obs_port: int = 0  # the port the separate object store listens on (0: the OS picks one)
    url_expiry_seconds: int = 8 * 3600
    # Several URLs of one call: a JSON array, or one string joined by ",", ";", " " or "\n".
    url_list_style: Literal["array", "comma", "semicolon", "space", "newline"] = "array"
    split_rows: int = 50_000
    min_recording_bytes: int = 2_000
    max_recording_bytes: int = 64_000
    big_recordings: dict[str, int] = field(default_factory=dict)  # call_id -> exact size in bytes
    faults: Faults = field(default_factory=Faults)
    base_date: date | None = None  # first day of synthetic data; default 7 days before today
    days: int = 14
    # How bill ZIP entries are written (protocol §4 allows each variant; defaults: the numbered,
    # UTF-8, CRLF, exact-header files the simulator always wrote).
    bill_entry_names: Literal["numbered", "plain"] = "numbered"  # _call_{n}.csv | one _call.csv per kind
    csv_extension: str = ".csv"  # any letter case of ".csv"
    csv_encoding: Literal["utf-8", "utf-8-sig", "gb18030"] = "utf-8"
    csv_line_ending: Literal["\n", "\r\n"] = "\r\n"
    csv_header: Literal["exact", "none", "spaced-upper"] = "exact"
    bill_extra_entries: list[str] = field(default_factory=list)  # more entry names, a line of text each
    # Where getRecordFileUrlFromObs puts ``url``: inside resultData (the vendor's example) or beside
    # it at the top level (the vendor's field table).
    url_placement: Literal["resultData", "top"] = "resultData"
    # Pre-signed URL paths end in a UUID, as the vendor's example (deterministic per recording), or
    # in the recording's file name (the simulator's old behaviour).
    url_naming: Literal["uuid", "name"] = "uuid"
    # queryBillData's responseId: 32 hex (vendor example), a dashed UUID, a short lower-case id
    # (6-16 characters) or a mixed one (letters of both cases, digits, "-", "_", ".", 10-36 characters).
    response_id_style: Literal["hex32", "uuid", "short", "mixed"] = "hex32"
    # Chance that an answered call with a long enough talk is recorded in two segments.
    multi_recording_rate: float = 0.10
    # Chance that such a two-segment call's second file has the first one's name in another agent's
    # directory (two recordings whose paths differ only by directory).
    shared_name_rate: float = 0.0

    def validate(self) -> None:
        if not self.tenants:
            raise ValueError("at least one tenant is needed")
        ids = [t.account_id for t in self.tenants]
        if len(set(ids)) != len(ids):
            raise ValueError("tenant account ids must be unique")
        if len(self.tenants) > 80:
            raise ValueError("at most 80 tenants")
        for tenant in self.tenants:
            tenant.validate()
        own = [t.ak for t in self.tenants if t.ak is not None]
        taken = {self.ak, *self.extra_keys}
        if len(set(own)) != len(own) or taken & set(own):
            raise ValueError("each tenant's ak must be its own (not another tenant's, the default ak or an extra key)")
        if not 60 <= self.min_recording_bytes <= self.max_recording_bytes:
            raise ValueError("need 60 <= min_recording_bytes <= max_recording_bytes")
        for call_id, size in self.big_recordings.items():
            if size < 60:
                raise ValueError(f"big_recordings[{call_id!r}] must be >= 60 bytes")
        if self.split_rows < 1:
            raise ValueError("split_rows must be >= 1")
        if self.callback_max_tries < 1:
            raise ValueError("callback_max_tries must be >= 1")
        for name, allowed in (
            ("url_list_style", URL_LIST_STYLES),
            ("url_placement", URL_PLACEMENTS),
            ("url_naming", URL_NAMINGS),
            ("response_id_style", RESPONSE_ID_STYLES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0 <= self.multi_recording_rate <= 1:
            raise ValueError("multi_recording_rate must be within 0..1")
        if not 0 <= self.shared_name_rate <= 1:
            raise ValueError("shared_name_rate must be within 0..1")
        if not 1 <= self.days <= 366:  # file names carry MMdd: at most one year of data
            raise ValueError("days must be 1..366")
        if self.bill_entry_names not in BILL_ENTRY_NAMES:
            raise ValueError(f"bill_entry_names must be one of {', '.join(BILL_ENTRY_NAMES)}")
        if self.csv_extension.lower() != ".csv":
            raise ValueError(f"csv_extension must be '.csv' in some letter case, not {self.csv_extension!r}")
        if self.csv_encoding not in CSV_ENCODINGS:
            raise ValueError(f"csv_encoding must be one of {', '.join(CSV_ENCODINGS)}")
        if self.csv_line_ending not in CSV_LINE_ENDINGS:
            raise ValueError(r"csv_line_ending must be '\n' or '\r\n'")
        if self.csv_header not in CSV_HEADERS:
            raise ValueError(f"csv_header must be one of {', '.join(CSV_HEADERS)}")
        for name in self.bill_extra_entries:
            if not name or name.endswith("/") or "\\" in name or name.startswith("/") or ".." in name.split("/"):
                raise ValueError(f"bill_extra_entries: {name!r} is not a plain entry name")
        for name in ("ccfs_name", "obs_name"):
            value = getattr(self, name)
            if value is not None and not _HOST_NAME.fullmatch(value):
                raise ValueError(f"{name} must be a DNS host name such as obs.sim.internal, not {value!r}")
        if self.obs_name is not None and not self.tls:
            raise ValueError("obs_name needs tls: the object store's own CA is the point of it")
        if self.obs_name is not None and self.obs_name.lower() == (self.ccfs_name or "").lower():
            raise ValueError("obs_name must differ from ccfs_name")
        if not 0 <= self.obs_port <= 65535:
            raise ValueError("obs_port must be 0..65535")
        if self.obs_url_port is not None and not 1 <= self.obs_url_port <= 65535:
            raise ValueError("obs_url_port must be 1..65535")
        self.faults.validate()


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})+")

# Choices of the bill-format fields of SimulatorConfig (also the CLI's choices).
BILL_ENTRY_NAMES = ("numbered", "plain")
CSV_ENCODINGS = ("utf-8", "utf-8-sig", "gb18030")
CSV_LINE_ENDINGS = ("\n", "\r\n")
CSV_HEADERS = ("exact", "none", "spaced-upper")
