"""``python -m local.ccfs_simulator`` and the pytest fixtures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from local.ccfs_simulator import Simulator
from tests.integration.conftest import RawCcfs, wrapped

ROOT = Path(__file__).resolve().parents[2]


def _first_line(process: subprocess.Popen, timeout: float = 20.0) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines:
        process.kill()
        pytest.fail(f"the simulator printed nothing within {timeout}s: {process.stderr.read()}")
    return lines[0]


@pytest.fixture
def run_cli():
    started: list[subprocess.Popen] = []

    def run(*args: str) -> tuple[subprocess.Popen, dict]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the package finds ccfs itself
        process = subprocess.Popen(
            [sys.executable, "-m", "local.ccfs_simulator", "--port", "0", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process, json.loads(_first_line(process))

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


class _Info:
    """Enough of a Simulator for RawCcfs."""

    def __init__(self, info: dict) -> None:
        self.base_url, self.ca_bundle, self.ak, self.sk = info["base_url"], info["ca_bundle"], info["ak"], info["sk"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_its_coordinates_serves_and_exits_cleanly(run_cli, signum):
    process, info = run_cli(
        "--tenants", "2", "--tz", "Asia/Shanghai,Europe/Berlin", "--calls-per-day", "20", "--seed", "3"
    )
    assert set(info) >= {"base_url", "ca_bundle", "ak", "sk", "tenants", "admin_url"}
    assert info["tenants"] == [
        {"account_id": "acct001", "tz": "Asia/Shanghai"},
        {"account_id": "acct002", "tz": "Europe/Berlin"},
    ]
    assert info["base_url"].startswith("https://127.0.0.1:") and Path(info["ca_bundle"]).is_file()
    raw = RawCcfs(_Info(info))
    try:
        body = wrapped(
            {
                "beginTime": "2024-01-01 00:00:00",
                "endTime": "2024-01-01 01:00:00",
                "dataType": "call",
                "callBackURL": "http://127.0.0.1:9/",
            }
        )
        assert raw.json("queryBillData", body)["resultCode"] == "0"
        counters = raw.get(info["admin_url"] + "/counters").json()
        assert counters["requests_by_op.queryBillData"] == 1
    finally:
        raw.close()
    process.send_signal(signum)
    assert process.wait(10) == 0
    assert not Path(info["ca_bundle"]).exists()  # temp files are removed on shutdown


def test_cli_plain_http_and_profile(run_cli):
    process, info = run_cli("--plain-http", "--profile", "chaos", "--latency-ms", "0", "--sk", "fixed-sk")
    assert info["base_url"].startswith("http://") and info["ca_bundle"] is None and info["sk"] == "fixed-sk"
    faults = httpx.get(info["admin_url"] + "/faults", timeout=10).json()
    assert faults["error_rate"] == 0.2 and faults["latency_ms"] == 0
    process.terminate()
    assert process.wait(10) == 0


def test_cli_bill_format_options_reach_the_config():
    from local.ccfs_simulator.__main__ import _parser, config_from_args

    default = config_from_args(_parser().parse_args([]))
    assert (default.bill_entry_names, default.csv_extension, default.csv_encoding) == ("numbered", ".csv", "utf-8")
    assert (default.csv_line_ending, default.csv_header, default.bill_extra_entries) == ("\r\n", "exact", [])
    args = _parser().parse_args(
        [
            "--bill-entry-names",
            "plain",
            "--csv-extension",
            ".CSV",
            "--csv-encoding",
            "gb18030",
            "--csv-line-ending",
            "lf",
            "--csv-header",
            "spaced-upper",
            "--bill-extra-entry",
            "readme.txt",
            "--bill-extra-entry",
            "b.txt",
        ]
    )
    config = config_from_args(args)
    config.validate()
    assert (config.bill_entry_names, config.csv_extension, config.csv_encoding) == ("plain", ".CSV", "gb18030")
    assert (config.csv_line_ending, config.csv_header) == ("\n", "spaced-upper")
    assert config.bill_extra_entries == ["readme.txt", "b.txt"]


def test_cli_rejects_bad_options():
    result = subprocess.run(
        [sys.executable, "-m", "local.ccfs_simulator", "--tz", "Mars/Olympus"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "error" in result.stderr


def test_fixture_gives_a_running_fast_simulator(ccfs_sim):
    assert isinstance(ccfs_sim, Simulator)
    assert ccfs_sim.config.callback_retry_interval == 0.05 and ccfs_sim.config.callback_delay == 0
    assert httpx.get(ccfs_sim.admin_url + "/counters", verify=ccfs_sim.client_ssl_context()).status_code == 200


def test_factory_and_context_manager_stop_what_they_start(ccfs_sim_factory):
    sim = ccfs_sim_factory(seed=9, faults={"error_rate": 0.5})
    assert sim.config.seed == 9 and sim.faults.error_rate == 0.5
    with Simulator() as other:
        url = other.admin_url + "/counters"
        context = other.client_ssl_context()
        assert httpx.get(url, verify=context).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, verify=context, timeout=5)
    sim.stop()
    sim.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(sim.admin_url + "/counters", verify=context, timeout=5)
