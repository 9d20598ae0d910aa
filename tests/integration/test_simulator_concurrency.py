"""The simulator's gauge of concurrent requests and connections (``Simulator.concurrency``,
``GET /_admin/concurrency``): what the e2e bound on connections toward CC-FS is measured with, so it
must count exactly, without timing: ``hold_ccfs`` keeps CC-FS operations in flight until released."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from ccfs.models import format_time
from tests.integration.conftest import RawCcfs


def _url_body(sim):
    day = sim.base_date + timedelta(days=1)
    call = next(c for c in sim.calls("acct001", day) if len(c.recordings) == 1)
    rec = call.recordings[0]
    return {"callId": call.call_id, "beginTime": format_time(rec.call_begin), "endTime": format_time(rec.call_end)}


def test_requests_in_flight_and_their_peak_are_counted_exactly(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory()
    body = {**_url_body(sim), "version": "2.0"}
    clients = [RawCcfs(sim) for _ in range(5)]  # one connection each
    try:
        assert sim.concurrency()["ccfs_peak"] == 0
        with ThreadPoolExecutor(5) as pool, sim.hold_ccfs():
            futures = [pool.submit(c.json, "getRecordFileUrlFromObs", body) for c in clients]
            assert sim.wait_in_flight("ccfs", 5, timeout=30)
            held = sim.concurrency()
            assert held["ccfs_in_flight"] == 5 and held["ccfs_peak"] == 5
            assert held["connections_open"] >= 5
        urls = [f.result(timeout=30)["resultData"]["url"] for f in futures]
        after = sim.concurrency()
        assert after["ccfs_in_flight"] == 0 and after["ccfs_peak"] == 5
        assert after["connections_peak"] >= 5

        # object storage is counted apart: a pre-signed GET is not a CC-FS operation
        assert clients[0].http.get(urls[0]).status_code == 200
        assert sim.concurrency()["obs_peak"] == 1 and sim.concurrency()["ccfs_peak"] == 5

        # the admin API serves the same numbers; POST /_admin/reset brings peaks back to now
        admin = raw_factory(sim).http
        assert admin.get(sim.admin_url + "/concurrency").json()["ccfs_peak"] == 5
        assert admin.post(sim.admin_url + "/reset").status_code == 200
        reset = admin.get(sim.admin_url + "/concurrency").json()
        assert reset["ccfs_peak"] == 0 and reset["obs_peak"] == 0
    finally:
        for client in clients:
            client.close()
    assert sim.concurrency()["connections_peak"] >= 1  # the admin connection itself
