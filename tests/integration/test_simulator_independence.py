"""The simulator reads requests with its own field tables, not the exporter's ``ccfs.models``
(issue 12 §1): a misreading of the vendor documents in the client's models is refused, not agreed
on by construction. Each test plants a mistake in ``ccfs.models`` (serialisation *and* validation,
so the client's own models accept what they send) and checks that the simulator answers with the
resultCode a CC-FS would."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import ccfs.models
import local.ccfs_simulator.simulator as simulator_module
from ccfs.client import CcfsClient, CcfsConfig, RetryPolicy
from ccfs.errors import CcfsPermanentError

pytestmark = pytest.mark.integration


def _client(sim) -> CcfsClient:
    return CcfsClient(CcfsConfig(sim.base_url, sim.ak, sim.sk, ca_bundle=sim.ca_bundle, retry=RetryPolicy(attempts=1)))


def _window(sim) -> tuple[datetime, datetime]:
    begin = datetime.combine(sim.base_date + timedelta(days=1), datetime.min.time())
    return begin, begin + timedelta(hours=1)


def test_the_simulator_does_not_use_the_exporters_models() -> None:
    """No module of the simulator package (the ``Simulator`` and every part it is assembled from)
    imports the exporter's models, its column tables or the exporter itself."""
    package = Path(simulator_module.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert {"simulator.py", "operations.py", "object_store.py", "callbacks.py"} <= {m.name for m in modules}
    forbidden = re.compile(r"^\s*(from|import)\s+(ccfs\.models|ccfs\.columns|exporter)\b", re.MULTILINE)
    offenders = {m.name: forbidden.findall(m.read_text(encoding="utf-8")) for m in modules}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_a_time_format_misread_by_the_client_is_refused(ccfs_sim, monkeypatch) -> None:
    """The client's models read times as ISO 8601 with a 'T' and agree with themselves."""
    monkeypatch.setattr(ccfs.models, "TIME_FORMAT", "%Y-%m-%dT%H:%M:%S")
    monkeypatch.setattr(ccfs.models, "_TIME_RE", re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\Z", re.ASCII))
    begin, end = _window(ccfs_sim)
    sent = ccfs.models.GetRecordFileUrlRequest(callId="1-1", beginTime=begin, endTime=end).model_dump_json()
    assert "T00:00:00" in sent
    ccfs.models.GetRecordFileUrlRequest.model_validate_json(sent)  # the client's models accept it
    with _client(ccfs_sim) as client, pytest.raises(CcfsPermanentError) as refused:
        client.query_bill_data(begin, end, callback_url="https://example.test/cb", account_id="acct001")
    assert refused.value.code == "0300004"  # malformed: times are yyyy-MM-dd HH:mm:ss
    with _client(ccfs_sim) as client, pytest.raises(CcfsPermanentError) as refused:
        client.get_record_file_urls("1-1", begin, end)
    assert refused.value.code == "0300004"


def test_a_window_limit_misread_by_the_client_is_refused(ccfs_sim, monkeypatch) -> None:
    """The client's models allow 4-day windows; the documents say at most 3 days."""
    monkeypatch.setattr(ccfs.models, "MAX_WINDOW", timedelta(days=4))
    begin, _ = _window(ccfs_sim)
    end = begin + timedelta(days=3, hours=12)
    with _client(ccfs_sim) as client, pytest.raises(CcfsPermanentError) as refused:
        client.query_bill_data(begin, end, callback_url="https://example.test/cb", account_id="acct001")
    assert refused.value.code == "0300004"


def test_a_field_misnamed_by_the_client_is_refused(ccfs_sim, monkeypatch) -> None:
    """The client's serialisation names callBackURL 'callbackURL' (one letter's case)."""
    original = CcfsClient._build

    def misnamed(self, *args, **kwargs):
        return original(self, *args, **kwargs).replace(b'"callBackURL"', b'"callbackURL"')

    monkeypatch.setattr(CcfsClient, "_build", misnamed)
    begin, end = _window(ccfs_sim)
    with _client(ccfs_sim) as client, pytest.raises(CcfsPermanentError) as refused:
        client.query_bill_data(begin, end, callback_url="https://example.test/cb", account_id="acct001")
    assert refused.value.code == "0300001"  # callBackURL is missing
