"""The baseline: the copy script a user would write by hand with the same libraries.

Sequential, one request at a time: ask CC-FS for the recording's URL, ``GET`` it, take
``response.content`` and ``put_object`` it. No streaming, no concurrency, no verification, no
bookkeeping. It is given the benefit of one keep-alive ``httpx.Client`` (a script calling
``httpx.post`` per request would also pay a TLS handshake each time) and the project's auth-v2
signer (a user would port the vendor's demo signer; signing costs microseconds either way).
"""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx

from ccfs.auth import sign

__all__ = ["copy_recordings", "recording_url"]

URL_OP = "/CCFS/resource/ccfs/getRecordFileUrlFromObs"


def recording_url(http: httpx.Client, base_url: str, ak: str, sk: str, item: dict[str, Any]) -> str:
    body = json.dumps(
        {"callId": item["callId"], "beginTime": item["callBegin"], "endTime": item["callEnd"], "version": "2.0"}
    ).encode()
    host = urlsplit(base_url).netloc
    headers = {"Host": host, "Content-Type": "application/json;charset=UTF-8", "Content-Length": str(len(body))}
    headers["Authorization"] = sign(ak, sk, "POST", URL_OP, headers, body, timestamp=datetime.now(UTC))
    reply = http.post(base_url + URL_OP, content=body, headers=headers).json()
    if reply.get("resultCode") != "0":
        raise RuntimeError(f"getRecordFileUrlFromObs: {reply.get('resultCode')} {reply.get('resultDesc')}")
    url = reply["resultData"]["url"]
    return url[0] if isinstance(url, list) else url


def copy_recordings(
    items: list[dict[str, Any]],
    *,
    base_url: str,
    ca_bundle: str,
    ak: str,
    sk: str,
    endpoint_url: str,
    bucket: str,
) -> int:
    """Copy each recording in turn; returns the bytes copied."""
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    copied = 0
    with httpx.Client(verify=ssl.create_default_context(cafile=ca_bundle), timeout=300) as http:
        for item in items:
            url = recording_url(http, base_url, ak, sk, item)
            response = http.get(url)
            response.raise_for_status()
            data = response.content
            key = f"naive/{item['accountId']}/{item['callDate']}/{item['callId']}/{item['fileName'].rsplit('/', 1)[-1]}"
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            copied += len(data)
    return copied
