"""Which pre-signed URL is this recording's, and whether it may be fetched (docs/design.md).

CC-FS answers a call's recordings with object-storage URLs that usually end in a UUID, not the file
name (protocol §5): :func:`pick_message_url` matches one to the recording only when that cannot store
one recording under another's name. :func:`check_recording_url` keeps the fetch on https and on the
allowed object-storage hosts and ports (a pre-signed URL is a credential-bearing fetch from inside
the customer's account: no SSRF). Pure functions: no I/O.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote

import httpx

from exporter import layout
from exporter.messages import RecordingMessage
from exporter.recording_errors import PermanentRecordingError

__all__ = ["check_recording_url", "host_allowed", "pick_message_url", "pick_url", "unidentifiable"]


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def _entry(raw: str) -> tuple[str, int | None]:
    """An allow-list entry ``name``, ``.suffix``, ``ip`` or any of them with ``:port``
    (``[v6]:port`` for IPv6) → ``(name, port)``; no port means the https default, 443."""
    entry = raw.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") and rest[1:].isdigit() else ""
        return host, int(port) if port else None
    name, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in name:  # an unbracketed IPv6 address has no port
        return name.rstrip("."), int(port)
    return entry.rstrip("."), None


def host_allowed(host: str, allowed: list[str], port: int | None = None) -> bool:
    """``host`` equals an entry or ends with it on a dot boundary (``.obs.example.com`` or
    ``obs.example.com`` both allow ``bucket.obs.example.com``). IP entries and IP hosts only match
    exactly. An empty list allows nothing.

    Ports: an entry without one allows only https's default port (443, or none in the URL); an
    entry ``host:8443`` allows exactly that port (on-premises LSS often serves another). A pre-signed
    URL is a credential-bearing fetch from a Lambda inside the customer's account: it must not be
    steerable to any port of an allowed host (SSRF)."""
    host = host.strip().lower().rstrip(".")
    if not host:
        return False
    wanted = 443 if port is None else port
    host_ip = _ip(host)
    for raw in allowed:
        entry, entry_port = _entry(raw)
        bare = entry.lstrip(".")
        if not bare or (443 if entry_port is None else entry_port) != wanted:
            continue
        entry_ip = _ip(bare)
        if host_ip is not None or entry_ip is not None:
            if host_ip is not None and entry_ip is not None and host_ip == entry_ip:
                return True
            continue
        if host == bare or host.endswith("." + bare):
            return True
    return False


def check_recording_url(url: str, allowed: list[str]) -> httpx.URL:
    """The parsed URL if it may be fetched; PermanentRecordingError otherwise (nothing is fetched).

    The same parsed object is used for the request, so the check and the fetch cannot disagree on
    what the host is.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise PermanentRecordingError("recording URL is not a valid URL") from None
    if parsed.scheme != "https":
        raise PermanentRecordingError(f"recording URL must be https, not {parsed.scheme or 'none'}")
    if parsed.userinfo or not host_allowed(parsed.host, allowed, parsed.port):
        where = parsed.host[:100] + (f":{parsed.port}" if parsed.port is not None else "")
        raise PermanentRecordingError(f"recording URL host not allowed: {where}")
    return parsed


def _url_last_segment(url: str) -> str:
    path = httpx.URL(url).path if url else ""
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])


def _url_stem(url: str) -> str:
    last = _url_last_segment(url)
    return last.rsplit(".", 1)[0] if "." in last else last


def _names_a_file(url: str) -> bool:
    """Whether the URL's last path segment looks like a file name (``0903379.wav``), not an opaque
    object id such as the vendor's UUID."""
    try:
        last = _url_last_segment(url)
    except (httpx.InvalidURL, ValueError):
        return False
    return "." in last.strip(".")


def pick_url(urls: list[str], file_name: str, ordinal: int, count: int, *, ordinal_certain: bool = True) -> str | None:
    """The URL of this recording, or None: use the fallback by name (downloadRecordFile).

    The vendor's URLs end in a UUID, not the file name (protocol §5), and several recordings of a call
    come back "sorted by start time and end time". So: a URL whose last segment names this file wins;
    otherwise the ``ordinal``-th URL, but only when CC-FS returned exactly ``count`` URLs (one per
    index row of the call), the bill step could place this recording with certainty
    (``ordinal_certain``: no other row with the same begin and end), and — when there are several —
    that URL does not name some other file (the only URL of a one-recording call may carry any object
    name). Anything else could store one recording under another's name: None.
    """
    stem = layout.recording_stem(file_name).casefold()
    for url in urls:
        try:
            if _url_stem(url).casefold() == stem:
                return url
        except (httpx.InvalidURL, ValueError):
            continue
    if len(urls) != count or not 1 <= ordinal <= count:
        return None
    if not ordinal_certain:
        return None
    url = urls[ordinal - 1]
    return None if count > 1 and _names_a_file(url) else url


def pick_message_url(urls: list[str], message: RecordingMessage) -> str | None:
    """:func:`pick_url` for a queue message: by the position in this recording's own time window
    (``urlOrdinal``/``urlCount``) when CC-FS returned that many URLs, else by the position in the
    whole call (``ordinal``/``count``): CC-FS answering all the call's recordings whatever the window."""
    certain = message.ordinalCertain or message.count == 1  # the call's only recording: nothing to confuse
    if message.urlOrdinal is not None and message.urlCount is not None and len(urls) == message.urlCount:
        url = pick_url(urls, message.fileName, message.urlOrdinal, message.urlCount, ordinal_certain=certain)
        if url is not None and message.count > 1 and _names_a_file(url) and not _is_named(url, message.fileName):
            return None  # the one URL of this window names another of the call's files
        return url
    return pick_url(urls, message.fileName, message.ordinal, message.count, ordinal_certain=certain)


def _is_named(url: str, file_name: str) -> bool:
    try:
        return _url_stem(url).casefold() == layout.recording_stem(file_name).casefold()
    except (httpx.InvalidURL, ValueError):
        return False


def unidentifiable(urls: list[str], message: RecordingMessage) -> str:
    """Why no URL could be matched to this recording (kept with a fallback that fails)."""
    if len(urls) not in (message.count, message.urlCount):
        return f"{len(urls)} URLs returned for the call's {message.count} indexed recordings: none names this file"
    if message.count > 1 and not message.ordinalCertain:
        return (
            f"{len(urls)} URLs returned, none names this file, and its place among the call's recordings "
            "is not certain (another recording has the same begin and end time, or a time is missing)"
        )
    return f"the URL in this recording's place ({message.ordinal} of {len(urls)}) names another file"
