"""Two trust stores, not one (issue 11 §2).

CC-FS often has a private CA (``CCFS_CA_BUNDLE_PARAM``: the CC-FS client then trusts that CA only);
the pre-signed recording URLs it hands out point at object storage: public OBS (a public CA, in the
system store) or an on-premises LSS (maybe a private CA of its own, ``RECORDING_CA_BUNDLE_PARAM``).
Real TLS servers on 127.0.0.1, each with a certificate from its own test CA; the "system" store is
``SSL_CERT_FILE``, which httpx honours (trust_env).
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import trustme

from exporter import ccfs_factory
from exporter.config import get_settings
from tests.conftest import load_handler, reset_process_caches
from tests.fakes.ccfs import FakeCcfs
from tests.helpers import fast_clients
from tests.unit.recording_helpers import (
    CALL,
    RID,
    body_for,
    final_key,
    job,
    read,
    rec_event,
    start_job,
    wav,
)

DATA = wav("trust", 4000)


class _Server:
    """An HTTPS server on 127.0.0.1:0 whose certificate comes from ``ca``; GET answers ``DATA``."""

    def __init__(self, ca: trustme.CA) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(DATA)))
                self.end_headers()
                self.wfile.write(DATA)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}/rec/x.wav?AccessKeyId=AK&Expires=1&Signature=SECRET"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """CAs (public = in the "system" store, lss, ccfs), their PEM files and one server per CA."""
    cas = {name: trustme.CA(organization_name=f"{name} test CA") for name in ("public", "lss", "ccfs")}
    files = {}
    for name, ca in cas.items():
        files[name] = tmp_path / f"{name}.pem"
        ca.cert_pem.write_to_path(str(files[name]))
    servers = {name: _Server(ca) for name, ca in cas.items()}
    try:
        yield {"pem": files, "server": servers}
    finally:
        for server in servers.values():
            server.stop()


def _configure(monkeypatch: pytest.MonkeyPatch, pki: dict[str, Any], *, lss: bool) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/aicc/ccfs-ca", Value=pki["pem"]["ccfs"].read_text(), Type="String", Overwrite=True)
    ssm.put_parameter(Name="/aicc/lss-ca", Value=pki["pem"]["lss"].read_text(), Type="String", Overwrite=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["pem"]["public"]))
    monkeypatch.setenv("CCFS_CA_BUNDLE_PARAM", "/aicc/ccfs-ca")
    monkeypatch.setenv("RECORDING_CA_BUNDLE_PARAM", "/aicc/lss-ca" if lss else "")
    reset_process_caches()


def _reaches(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).content == DATA
    except httpx.ConnectError as exc:
        if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
            raise
        return False


def test_recording_client_trusts_the_system_store_and_the_lss_bundle_never_the_ccfs_ca(aws, pki, monkeypatch):
    _configure(monkeypatch, pki, lss=True)
    settings = get_settings()
    servers = pki["server"]
    recordings = ccfs_factory.recording_http(settings)
    assert _reaches(recordings, servers["public"].url)  # public OBS: the system store
    assert _reaches(recordings, servers["lss"].url)  # LSS: RECORDING_CA_BUNDLE_PARAM
    assert not _reaches(recordings, servers["ccfs"].url)  # CC-FS's private CA: not for recordings
    # the CC-FS client trusts its private CA and nothing else: it could not fetch a recording
    ccfs = ccfs_factory.ccfs_client(settings, settings.tenants[0]).http
    assert _reaches(ccfs, servers["ccfs"].url)
    assert not _reaches(ccfs, servers["public"].url)
    assert not _reaches(ccfs, servers["lss"].url)
    assert ccfs_factory.recording_http(settings) is recordings  # one client per process


def test_recording_client_without_an_lss_bundle_trusts_the_system_store_only(aws, pki, monkeypatch):
    _configure(monkeypatch, pki, lss=False)
    recordings = ccfs_factory.recording_http(get_settings())
    assert _reaches(recordings, pki["server"]["public"].url)
    assert not _reaches(recordings, pki["server"]["lss"].url)
    assert not _reaches(recordings, pki["server"]["ccfs"].url)


def test_recording_bundle_parameter_that_is_not_pem_is_named_in_the_error(aws, pki, monkeypatch):
    _configure(monkeypatch, pki, lss=True)
    boto3.client("ssm").put_parameter(Name="/aicc/lss-ca", Value="not a certificate", Type="String", Overwrite=True)
    reset_process_caches()
    with pytest.raises(ccfs_factory.ConfigError, match="SSM parameter /aicc/lss-ca does not hold a PEM CA bundle"):
        ccfs_factory.recording_http(get_settings())


def _private_ca_ccfs(ccfs_ca: Path, url: str) -> FakeCcfs:
    """CC-FS behind a private CA: its ``http`` client trusts that CA only, as ``CcfsClient`` does
    with ``ca_bundle``; it hands out one pre-signed URL on object storage with a public CA (and
    fails the test if the copier falls back to downloadRecordFile)."""
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(ccfs_ca)))
    return FakeCcfs(http=http, record_urls=[url], fallback=False)


def test_recordings_are_copied_while_ccfs_has_a_private_ca(aws, pki, monkeypatch, lambda_context):
    """The download handler, CC-FS configured with its private CA (as the prod samconfig): the
    recording comes from object storage, whose certificate only the system store trusts. Fetched
    through the CC-FS client (the old code), it failed TLS on every recording."""
    _configure(monkeypatch, pki, lss=False)
    public = pki["server"]["public"]
    monkeypatch.setenv("RECORDING_URL_HOST_SUFFIXES", f"127.0.0.1:{public.port}")
    reset_process_caches()
    fake = _private_ca_ccfs(pki["pem"]["ccfs"], public.url)
    fast_clients(monkeypatch)
    handler = load_handler("download")
    monkeypatch.setattr(handler, "ccfs_client", lambda settings, tenant: fake)  # recording_http stays real
    start_job(aws, total=1)
    body = body_for(CALL, "0903379")
    try:
        assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    finally:
        fake.http.close()
    assert read(aws, final_key(body)) == DATA
    assert fake.file_calls == []
    assert job(aws).job_status == "COMPLETED"
    assert RID in read(aws, f"manifests/{RID}.json").decode()


def test_a_certificate_the_recording_trust_rejects_is_named_in_the_reason(aws, pki, monkeypatch, lambda_context):
    """Object storage whose CA is in no trust the recording client has (here: only CC-FS's CA was
    given, the mix-up of issue 11): the recording is retried and, on its last delivery, recorded
    FAILED with a reason an operator can act on — not a bare "ConnectError"."""
    _configure(monkeypatch, pki, lss=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["pem"]["ccfs"]))  # the system store: CC-FS's CA only
    lss = pki["server"]["lss"]
    monkeypatch.setenv("RECORDING_URL_HOST_SUFFIXES", f"127.0.0.1:{lss.port}")
    reset_process_caches()
    fake = _private_ca_ccfs(pki["pem"]["ccfs"], lss.url)
    fast_clients(monkeypatch)
    handler = load_handler("download")
    monkeypatch.setattr(handler, "ccfs_client", lambda settings, tenant: fake)
    start_job(aws, total=1)
    body = body_for(CALL, "0903379")
    try:
        # the only record failed: reported for SQS to retry (a trust fix plus a redrive recovers it)
        event = rec_event(aws, [body], receive_count=5)
        assert handler.lambda_handler(event, lambda_context) == {
            "batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]
        }
    finally:
        fake.http.close()
    manifest = json.loads(read(aws, f"manifests/{RID}.json"))
    (failure,) = manifest["failures"]
    assert "TLS certificate verification failed" in failure["reason"]
    assert "RecordingCaBundleParameter" in failure["reason"] and "SECRET" not in failure["reason"]
