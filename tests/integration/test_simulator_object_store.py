"""The simulator's object store as a deployment has one: its own host name, port and CA, apart from
CC-FS (``obs_name``), so that a client trusting CC-FS's CA cannot fetch a recording (issue 11 §2).

Names resolve through the local stack's netmap (no DNS here), scoped to each test.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from ccfs.client import CcfsClient, CcfsConfig
from local.ccfs_simulator import SimulatorConfig
from local.stack.processes import netmap


@pytest.fixture
def hosts() -> Iterator[dict[str, str]]:
    mapping: dict[str, str] = {}
    yield mapping
    if mapping:
        netmap.uninstall(mapping)


def _recording_url(sim) -> tuple[str, str]:
    day = sim.base_date + timedelta(days=1)
    call = next(c for c in sim.calls("acct001", day) if len(c.recordings) == 1)
    rec = call.recordings[0]
    truth = sim.truth(rec.account_id, rec.call_begin - timedelta(days=1), rec.call_begin)
    sha = next(r.sha256 for r in truth.recordings if r.file_name == rec.file_name)
    with CcfsClient(CcfsConfig(sim.base_url, sim.ak, sim.sk, ca_bundle=sim.ca_bundle)) as client:
        [url] = client.get_record_file_urls(call.call_id, rec.call_begin, rec.call_end)
    return url, sha


def test_object_store_has_its_own_name_port_and_ca(ccfs_sim_factory, hosts):
    sim = ccfs_sim_factory(ccfs_name="ccfs.sim.internal", obs_name="obs.sim.internal")
    assert sim.obs_port != sim.port and sim.obs_ca_bundle != sim.ca_bundle
    assert sim.obs_base_url == f"https://obs.sim.internal:{sim.obs_port}"
    url, sha = _recording_url(sim)
    parsed = httpx.URL(url)
    assert (parsed.host, parsed.port) == ("obs.sim.internal", sim.obs_port)
    hosts.update({f"obs.sim.internal:{sim.obs_port}": f"127.0.0.1:{sim.obs_port}"})
    netmap.install(hosts)

    with httpx.Client(verify=ssl.create_default_context(cafile=sim.obs_ca_bundle)) as obs_trust:
        assert hashlib.sha256(obs_trust.get(url).content).hexdigest() == sha
    with (
        httpx.Client(verify=ssl.create_default_context(cafile=sim.ca_bundle)) as ccfs_trust,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        ccfs_trust.get(url)  # CC-FS's CA does not vouch for the object store
    # and CC-FS's own server does not serve the object store any more
    with httpx.Client(verify=ssl.create_default_context(cafile=sim.ca_bundle)) as ccfs_trust:
        assert ccfs_trust.get(sim.base_url + parsed.raw_path.decode()).status_code == 404


def test_object_store_certificate_names_only_the_object_store(ccfs_sim_factory, hosts):
    """Reached under CC-FS's name (or its address), the object store's certificate does not match."""
    sim = ccfs_sim_factory(ccfs_name="ccfs.sim.internal", obs_name="obs.sim.internal")
    url, _ = _recording_url(sim)
    hosts.update({f"ccfs.sim.internal:{sim.obs_port}": f"127.0.0.1:{sim.obs_port}"})
    netmap.install(hosts)
    wrong_name = url.replace("obs.sim.internal", "ccfs.sim.internal")
    with (
        httpx.Client(verify=ssl.create_default_context(cafile=sim.obs_ca_bundle)) as obs_trust,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        obs_trust.get(wrong_name)


def test_pre_signed_urls_can_name_the_standard_https_port(ccfs_sim_factory):
    """``obs_url_port=443``: the URLs carry no port, as OBS's do; the network maps it (netmap)."""
    sim = ccfs_sim_factory(obs_name="obs.sim.internal", obs_url_port=443)
    assert sim.obs_base_url == "https://obs.sim.internal"
    url, _ = _recording_url(sim)
    assert url.startswith("https://obs.sim.internal/obs/") and httpx.URL(url).port is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"obs_name": "obs.sim.internal", "tls": False}, "obs_name needs tls"),
        ({"obs_name": "same.sim.internal", "ccfs_name": "same.sim.internal"}, "obs_name must differ"),
        ({"obs_name": "not a name"}, "obs_name must be a DNS host name"),
        ({"ccfs_name": "under_score.x"}, "ccfs_name must be a DNS host name"),
        ({"obs_name": "obs.sim.internal", "obs_url_port": 0}, "obs_url_port must be 1..65535"),
    ],
)
def test_object_store_settings_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(**changes).validate()
