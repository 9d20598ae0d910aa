"""The simulator's tenants are separate developer accounts (issue 12 §4, seed 000): a request naming a
tenant must be signed by the ak that owns it, recordings are served only to their owner, each tenant's
data lives in its own zone, and callbacks are signed with the requesting tenant's key."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest

from local.ccfs_simulator import TenantSpec
from local.ccfs_simulator.config import SimulatorConfig
from local.ccfs_simulator.requests import format_time
from tests.integration.conftest import wrapped

A = TenantSpec("acct001", "Asia/Shanghai", calls_per_day=40, ak="ak-a", sk="sk-a")
B = TenantSpec("acct002", "America/Sao_Paulo", calls_per_day=40, ak="ak-b", sk="sk-b")


@pytest.fixture
def sim(ccfs_sim_factory):
    return ccfs_sim_factory(tenants=[A, B])


def _query(sim, account_id, callback_url="http://127.0.0.1:9/cb"):
    day = sim.base_date + timedelta(days=1)
    return wrapped(
        {
            "beginTime": f"{day} 00:00:00",
            "endTime": f"{day} 23:59:59",
            "accountId": account_id,
            "dataType": "call_record",
            "callBackURL": callback_url,
        }
    )


def test_a_tenants_request_signed_with_another_tenants_key_is_refused_401(sim, raw_factory):
    raw = raw_factory(sim)
    refused = raw.post("queryBillData", _query(sim, "acct002"), ak="ak-a", sk="sk-a")
    assert refused.status_code == 401
    assert refused.json()["resultCode"] == "401"
    assert sim.counters().get("http_401_account_not_owned") == 1
    assert sim.queries() == []  # nothing generated, no callback will come
    # the default ak owns neither tenant now
    assert raw.post("queryBillData", _query(sim, "acct002")).status_code == 401
    ok = raw.json("queryBillData", _query(sim, "acct002"), ak="ak-b", sk="sk-b")
    assert ok["resultCode"] == "0"


def test_recordings_are_served_only_to_the_ak_that_owns_the_call(sim, raw_factory):
    raw = raw_factory(sim)
    day = sim.base_date + timedelta(days=1)
    call = next(c for c in sim.calls("acct002", day) if c.recordings)
    rec = call.recordings[0]
    body = {
        "callId": call.call_id,
        "beginTime": format_time(rec.call_begin - timedelta(minutes=5)),
        "endTime": format_time(rec.call_end + timedelta(minutes=5)),
        "version": "2.0",
    }
    assert raw.json("getRecordFileUrlFromObs", body, ak="ak-a", sk="sk-a")["resultCode"] == "0300012"
    assert raw.json("getRecordFileUrlFromObs", body, ak="ak-b", sk="sk-b")["resultCode"] == "0"
    by_name = wrapped({"fileName": rec.file_name})
    assert raw.json("downloadRecordFile", by_name, ak="ak-a", sk="sk-a")["resultCode"] == "0300012"
    assert raw.post("downloadRecordFile", by_name, ak="ak-b", sk="sk-b").content[:4] == b"RIFF"


def test_each_tenant_gets_its_own_calls_in_its_zone_and_a_callback_signed_with_its_key(
    sim, raw_factory, receiver_factory
):
    receiver = receiver_factory(sim)
    raw = raw_factory(sim)
    for account, ak, sk in (("acct001", "ak-a", "sk-a"), ("acct002", "ak-b", "sk-b")):
        raw.json("queryBillData", _query(sim, account, receiver.url), ak=ak, sk=sk)
    assert receiver.wait(2)
    signed_by = {r.json["msgBody"]["accountId"]: r.headers for r in receiver.received}
    assert all(r.ok for r in receiver.received)
    for account, ak in (("acct001", "ak-a"), ("acct002", "ak-b")):
        authorization = dict(signed_by[account])["Authorization"]
        assert authorization.split("/")[1] == ak

    day = sim.base_date + timedelta(days=1)
    for received, ak, sk in zip(
        sorted(receiver.received, key=lambda r: r.json["msgBody"]["accountId"]),
        ("ak-a", "ak-b"),
        ("sk-a", "sk-b"),
        strict=True,
    ):
        account = received.json["msgBody"]["accountId"]
        name = received.json["msgBody"]["billFileName"]
        assert (
            raw.json(
                "downloadBillFile",
                wrapped({"billFileName": name}),
                ak="ak-a" if ak == "ak-b" else "ak-b",
                sk="sk-a" if sk == "sk-b" else "sk-b",
            )["resultCode"]
            == "0300012"
        )  # not the other's bill
        data = raw.post("downloadBillFile", wrapped({"billFileName": name}), ak=ak, sk=sk).content
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            cdr = b"".join(archive.read(n) for n in archive.namelist() if "_call" in n).decode()
        call_ids = {c.call_id for c in sim.calls(account, day)}
        assert call_ids and all(cid in cdr for cid in call_ids)  # the tenant-local day's calls
        other = "acct002" if account == "acct001" else "acct001"
        assert not any(c.call_id in cdr for c in sim.calls(other, day))


def test_a_query_without_account_covers_only_the_signing_accounts_tenants(sim, raw_factory, receiver_factory):
    receiver = receiver_factory(sim)
    raw = raw_factory(sim)
    body = _query(sim, "", receiver.url)
    raw.json("queryBillData", body, ak="ak-b", sk="sk-b")
    assert receiver.wait(1)
    name = receiver.received[0].json["msgBody"]["billFileName"]
    data = raw.post("downloadBillFile", wrapped({"billFileName": name}), ak="ak-b", sk="sk-b").content
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        text = b"".join(archive.read(n) for n in archive.namelist()).decode()
    assert "acct002" in text and "acct001" not in text


@pytest.mark.parametrize(
    ("tenants", "message"),
    [
        ([TenantSpec("acct001", ak="x")], "give both ak and sk"),
        ([TenantSpec("acct001", ak="x", sk="1"), TenantSpec("acct002", ak="x", sk="2")], "must be its own"),
        ([TenantSpec("acct001", ak="demo-ak", sk="1")], "must be its own"),
    ],
)
def test_tenant_keys_are_validated(tenants, message):
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(tenants=tenants).validate()


def test_cli_gives_each_tenant_its_own_key_and_zone_on_request():
    from local.ccfs_simulator.__main__ import _parser, config_from_args

    config = config_from_args(
        _parser().parse_args(["--tenants", "2", "--tenant-keys", "--tz", "Asia/Shanghai,Europe/Berlin"])
    )
    config.validate()
    assert [(t.account_id, t.ak, t.tz) for t in config.tenants] == [
        ("acct001", "demo-ak-acct001", "Asia/Shanghai"),
        ("acct002", "demo-ak-acct002", "Europe/Berlin"),
    ]
    assert all(t.sk and len(t.sk) == 32 for t in config.tenants)
    assert config_from_args(_parser().parse_args(["--tenants", "2"])).tenants[1].ak is None


def test_the_exporters_client_for_tenant_b_must_carry_bs_key(sim):
    """The product's client, as ``ccfs_client(settings, tenant)`` builds it per tenant: B's window
    asked with A's credentials is a CcfsAuthError (HTTP 401); with B's it is accepted."""
    from datetime import datetime

    from ccfs.client import CcfsClient, CcfsConfig, RetryPolicy
    from ccfs.errors import CcfsAuthError

    day = sim.base_date + timedelta(days=1)
    begin, end = datetime.combine(day, datetime.min.time()), datetime.combine(day, datetime.max.time())
    begin, end = begin.replace(microsecond=0), end.replace(microsecond=0)

    def client(ak: str, sk: str) -> CcfsClient:
        return CcfsClient(CcfsConfig(sim.base_url, ak, sk, ca_bundle=sim.ca_bundle, retry=RetryPolicy(attempts=1)))

    with client("ak-a", "sk-a") as a, client("ak-b", "sk-b") as b:
        with pytest.raises(CcfsAuthError):
            a.query_bill_data(begin, end, callback_url="http://127.0.0.1:9/cb", account_id="acct002")
        assert b.query_bill_data(begin, end, callback_url="http://127.0.0.1:9/cb", account_id="acct002")
