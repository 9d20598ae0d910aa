"""Tenants are separate developer accounts (issue 12 §4): the secret's two forms, its errors, one
CC-FS client per tenant, and windows planned in each tenant's own time zone."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from exporter.config import ConfigError
from exporter.tenants import parse_secret, resolve_tenants
from tests.conftest import load_handler

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:aicc/ccfs"
TWO = {
    "tenants": {
        "acct001": {"ak": "ak-one", "sk": "sk-one-VALUE"},
        "acct002": {"ak": "ak-two", "sk": "sk-two-VALUE", "timezone": "Europe/Berlin"},
    }
}


def keys(value: Any, tenants: list[str], zone: str = "Asia/Shanghai") -> Any:
    return resolve_tenants(parse_secret(value, SECRET), SECRET, tenants, zone)


# ---------------------------------------------------------------------------- the secret's forms


def test_single_account_form_signs_every_tenant_with_the_one_key() -> None:
    resolved = keys({"ak": "demo-ak", "sk": "demo-sk"}, ["acct001", "acct002"])
    assert {t: (c.ak, c.sk, c.timezone) for t, c in resolved.by_tenant.items()} == {
        "acct001": ("demo-ak", "demo-sk", "Asia/Shanghai"),
        "acct002": ("demo-ak", "demo-sk", "Asia/Shanghai"),
    }
    assert resolved.sk_for("demo-ak") == "demo-sk" and resolved.sk_for("other") is None
    assert resolved.tenants_of("demo-ak") == {"acct001", "acct002"}  # one developer account, as before


def test_single_account_form_for_the_whole_account() -> None:
    resolved = keys({"ak": "demo-ak", "sk": "demo-sk", "note": "extra top-level keys are ignored"}, ["_all"])
    assert resolved.for_tenant("_all").ak == "demo-ak" and resolved.tenants_of("demo-ak") == {"_all"}


def test_map_form_gives_each_tenant_its_key_and_zone() -> None:
    resolved = keys(TWO, ["acct001", "acct002"])
    one, two = resolved.for_tenant("acct001"), resolved.for_tenant("acct002")
    assert (one.ak, one.sk, one.timezone) == ("ak-one", "sk-one-VALUE", "Asia/Shanghai")  # stack default zone
    assert (two.ak, two.sk, two.timezone) == ("ak-two", "sk-two-VALUE", "Europe/Berlin")
    assert str(two.zone) == "Europe/Berlin"
    assert resolved.tenants_of("ak-one") == {"acct001"} and resolved.tenants_of("ak-two") == {"acct002"}
    assert resolved.sk_for("ak-two") == "sk-two-VALUE"
    assert "sk-one-VALUE" not in repr(one)


def test_map_form_with_a_default_for_tenants_not_in_the_map() -> None:
    value = {"ak": "dev-ak", "sk": "dev-sk", **TWO}
    resolved = keys(value, ["acct001", "acct003", "acct004"])
    assert resolved.for_tenant("acct001").ak == "ak-one"
    assert resolved.for_tenant("acct003").ak == resolved.for_tenant("acct004").ak == "dev-ak"
    assert resolved.tenants_of("dev-ak") == {"acct003", "acct004"}
    # a map entry for a tenant this stack does not export is not accepted on callbacks
    assert resolved.sk_for("ak-two") is None and resolved.tenants_of("ak-two") == frozenset()


def test_an_unknown_tenant_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"tenant 'acct009' is not configured \(TENANT_ACCOUNT_IDS: acct001\)"):
        keys(TWO, ["acct001"]).for_tenant("acct009")


# ---------------------------------------------------------------------------- the secret's errors


@pytest.mark.parametrize(
    ("value", "tenants", "message"),
    [
        ({"ak": "a"}, ["acct001"], r"top-level 'sk' is missing"),
        ({"sk": "b"}, ["acct001"], r"top-level 'ak' is missing"),
        ({}, ["acct001"], r"holds no credentials"),
        (["ak", "sk"], ["acct001"], r"secret: must be a JSON object"),
        ({"tenants": {"acct001": {"ak": "a"}}}, ["acct001"], r"tenants\.acct001\.sk: Field required"),
        ({"tenants": {"acct001": {"ak": "a", "sk": ""}}}, ["acct001"], r"tenants\.acct001\.sk: String should have"),
        ({"tenants": {"acct001": {"ak": "a b", "sk": "s"}}}, ["acct001"], r"tenants\.acct001\.ak: must be 1-128"),
        ({"tenants": {"acct001": "a:s"}}, ["acct001"], r"tenants\.acct001: must be a JSON object"),
        (
            {"tenants": {"acct001": {"ak": "a", "sk": "s", "timezone": "Mars/Olympus"}}},
            ["acct001"],
            r"tenants\.acct001\.timezone: not an IANA time zone name",
        ),
        (
            {"tenants": {"acct001": {"ak": "a", "sk": "s", "timezon": "Asia/Tokyo"}}},
            ["acct001"],
            r"tenants\.acct001\.timezon: Extra inputs are not permitted",
        ),
        ({"tenants": {"acct 1": {"ak": "a", "sk": "s"}}}, ["acct001"], r"tenants\.acct 1\.\[key\]: must be 1-20"),
        (
            {"tenants": {"acct001": {"ak": "same", "sk": "s1"}, "acct002": {"ak": "same", "sk": "s2"}}},
            ["acct001", "acct002"],
            r"tenants\.acct001 and tenants\.acct002 have the same ak",
        ),
        (
            {"ak": "dev", "sk": "s0", "tenants": {"acct002": {"ak": "dev", "sk": "s2"}}},
            ["acct001", "acct002"],
            r"tenants\.acct002\.ak repeats the top-level \(default\) ak",
        ),
        (TWO, ["acct001", "acct003"], r"no credentials for tenant acct003 \(in TENANT_ACCOUNT_IDS\)"),
        (TWO, ["_all"], r"TENANT_ACCOUNT_IDS is empty"),
    ],
)
def test_bad_secrets_name_the_secret_and_the_field_never_a_value(value: Any, tenants: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        keys(value, tenants)
    text = str(caught.value)
    assert SECRET in text
    for secret_value in ("s0", "s1", "s2", "sk-one-VALUE", "sk-two-VALUE", "a:s", "Mars/Olympus"):
        assert f"'{secret_value}'" not in text and f'"{secret_value}"' not in text
    assert "input_value" not in text


# ---------------------------------------------------------------------------- through Secrets Manager


@pytest.fixture
def two_tenant_secret(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    from exporter.config import get_settings
    from tests.conftest import reset_process_caches

    boto3.client("secretsmanager").put_secret_value(SecretId=aws.secret_arn, SecretString=json.dumps(TWO))
    monkeypatch.setenv("TENANT_ACCOUNT_IDS", "acct001,acct002")
    reset_process_caches()
    return get_settings()


def test_one_client_per_tenant_signed_with_its_key_and_kept_warm(two_tenant_secret: Any) -> None:
    from exporter import ccfs_factory

    settings = two_tenant_secret
    one = ccfs_factory.ccfs_client(settings, "acct001")
    two = ccfs_factory.ccfs_client(settings, "acct002")
    assert one is not two
    assert (one._config.ak, two._config.ak) == ("ak-one", "ak-two")
    assert ccfs_factory.ccfs_client(settings, "acct001") is one  # warm reuse
    assert ccfs_factory.credentials(settings, "acct002") == ("ak-two", "sk-two-VALUE")
    assert str(ccfs_factory.tenant_zone(settings, "acct002")) == "Europe/Berlin"
    assert str(ccfs_factory.tenant_zone(settings, "acct001")) == "Asia/Shanghai"
    with pytest.raises(ConfigError, match="acct009"):
        ccfs_factory.ccfs_client(settings, "acct009")


def test_a_secret_that_is_not_json_names_the_secret(aws: Any) -> None:
    import boto3

    from exporter import ccfs_factory
    from exporter.config import get_settings

    boto3.client("secretsmanager").put_secret_value(SecretId=aws.secret_arn, SecretString="ak=x;sk=y")
    with pytest.raises(ConfigError, match=r"is not JSON") as caught:
        ccfs_factory.tenant_keys(get_settings())
    assert "ak=x" not in str(caught.value)


class _Recorder:
    def __init__(self, tenant: str, calls: list[tuple[str, str, str | None]]) -> None:
        self.tenant, self.calls = tenant, calls

    def query_bill_data(
        self, begin: datetime, end: datetime, *, data_type: str = "", callback_url: str, account_id: str | None = None
    ) -> str:
        self.calls.append((self.tenant, f"{begin:%Y-%m-%d %H:%M:%S}|{end:%H:%M:%S}", account_id))
        return uuid.uuid4().hex


def test_each_tenants_windows_are_planned_in_its_zone_and_asked_with_its_client(
    two_tenant_secret: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    """10:10 UTC is 18:10 in Shanghai and 11:10 in Berlin: with 30 settle minutes, from 06:00
    tenant-local, Shanghai's windows 06:00-16:59 are due and Berlin's 06:00-09:59 only."""
    from exporter import ccfs_factory
    from exporter.config import get_settings

    monkeypatch.setenv("EXPORT_START_TIME", "2026-11-21T06:00:00")
    get_settings.cache_clear()
    module = load_handler("request_export")
    calls: list[tuple[str, str, str | None]] = []
    monkeypatch.setattr(ccfs_factory, "ccfs_client", lambda settings, tenant: _Recorder(tenant, calls))
    monkeypatch.setattr(module, "utc_now", lambda: datetime(2026, 11, 21, 10, 10, tzinfo=UTC))
    module.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context)

    shanghai = [(t, w, a) for t, w, a in calls if t == "acct001"]
    berlin = [(t, w, a) for t, w, a in calls if t == "acct002"]
    assert [w for _, w, _ in shanghai] == [f"2026-11-21 {h:02d}:00:00|{h:02d}:59:59" for h in range(6, 17)]
    assert [w for _, w, _ in berlin] == [f"2026-11-21 {h:02d}:00:00|{h:02d}:59:59" for h in range(6, 10)]
    assert {a for t, _, a in calls if t == "acct002"} == {"acct002"}  # B's windows asked with B's client
