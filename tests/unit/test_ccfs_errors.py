"""ccfs.errors: the result-code → error mapping and the redaction of secrets in text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccfs.errors import (
    PERMANENT_CODES,
    RESULT_DESCRIPTIONS,
    TRANSIENT_CODES,
    CcfsAuthError,
    CcfsError,
    CcfsNotFound,
    CcfsPermanentError,
    CcfsProtocolError,
    CcfsTransientError,
    CcfsUnknownResultCode,
    error_for_code,
    redact,
    redact_url,
)

# ---------------------------------------------------------------------------- error_for_code


@pytest.mark.parametrize("code", [f"030000{i}" for i in range(1, 8)] + ["0300010"])
def test_parameter_codes_are_permanent(code):
    error = error_for_code("queryBillData", code)
    assert type(error) is CcfsPermanentError
    assert not error.retryable
    assert error.code == code
    assert error.operation == "queryBillData"
    assert str(error) == f"queryBillData: {RESULT_DESCRIPTIONS[code]} (resultCode {code})"


@pytest.mark.parametrize("code", ["0300008", "0300009"])
def test_flow_control_codes_are_transient(code):
    error = error_for_code("downloadBillFile", code)
    assert type(error) is CcfsTransientError
    assert error.retryable
    assert "flow-control" in str(error)
    assert f"(resultCode {code})" in str(error)


def test_no_data_is_not_found():
    error = error_for_code("getRecordFileUrlFromObs", "0300012", "no record")
    assert type(error) is CcfsNotFound
    assert not isinstance(error, CcfsPermanentError | CcfsTransientError)
    assert not error.retryable
    assert str(error) == "getRecordFileUrlFromObs: no data found: no record (resultCode 0300012)"


@pytest.mark.parametrize("code", ["0300011", "0300099", "1234567"])
def test_unknown_codes_are_transient_and_recognisable(code):
    # protocol §7: an undocumented code is retried (bounded) and alarmed, never failed on first sight
    error = error_for_code("downloadRecord", code, "something odd")
    assert type(error) is CcfsUnknownResultCode
    assert isinstance(error, CcfsTransientError) and error.retryable
    assert not isinstance(error, CcfsPermanentError)
    assert str(error) == f"downloadRecord: undocumented result code: something odd (resultCode {code})"


def test_description_equal_to_meaning_is_not_repeated():
    error = error_for_code("queryBillData", "0300012", "no data found")
    assert str(error) == "queryBillData: no data found (resultCode 0300012)"


def test_code_sets_are_disjoint_and_cover_the_table():
    assert not TRANSIENT_CODES & PERMANENT_CODES
    assert set(RESULT_DESCRIPTIONS) == TRANSIENT_CODES | PERMANENT_CODES | {"0300012"}


def test_hierarchy():
    assert issubclass(CcfsAuthError, CcfsPermanentError)
    for cls in (CcfsTransientError, CcfsPermanentError, CcfsNotFound, CcfsProtocolError, CcfsAuthError):
        assert issubclass(cls, CcfsError)
    assert CcfsTransientError.retryable
    assert not CcfsAuthError.retryable
    assert not CcfsProtocolError.retryable


def test_http_status_codes_are_not_formatted_as_result_codes():
    error = CcfsTransientError("queryBillData", "HTTP 503", "503")
    assert str(error) == "queryBillData: HTTP 503"
    assert error.code == "503"


# ---------------------------------------------------------------------------- redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "https://obs.example.com/b/rec.wav?AccessKeyId=AK&Expires=1&Signature=S",
            "https://obs.example.com/b/rec.wav?<redacted>",
            id="presigned",
        ),
        pytest.param("https://h:28443/CCFS/x", "https://h:28443/CCFS/x", id="no-query-unchanged"),
        pytest.param("https://user:pw@h/p?x=1#frag", "https://h/p?<redacted>", id="userinfo-fragment"),
        pytest.param("http://h:8080/?", "http://h:8080/", id="empty-query"),
        pytest.param("https://[::1]:8443/p?x=1", "https://[::1]:8443/p?<redacted>", id="ipv6"),
        pytest.param("https://[fe80::1]/p", "https://[fe80::1]/p", id="ipv6-no-port"),
        pytest.param("http://h:abc/x?secret=1", "<unparseable url>", id="bad-port"),
        pytest.param("http://h:99999/x?secret=1", "<unparseable url>", id="port-out-of-range"),
        pytest.param("http://[::1/x?secret=1", "<unparseable url>", id="bad-ipv6"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


# ---------------------------------------------------------------------------- redact


def test_redact_replaces_auth_values_and_url_queries():
    text = (
        "failed: Authorization auth-v2/testak/2018-07-02T02:43:08Z/host/"
        "b49ae64f1d13d67d56b3dd1d638105ee2597420e3e3d35e99e057ce26e8c138c "
        "url https://obs.example.com/a.wav?Signature=SECRET and 'http://h/b?token=T2'"
    )
    out = redact(text)
    assert out == (
        "failed: Authorization auth-v2/<redacted> "
        "url https://obs.example.com/a.wav?<redacted> and 'http://h/b?<redacted>'"
    )


@pytest.mark.parametrize(
    "text",
    [
        "HTTPS://OBS.example.com/a?Signature=SECRET",
        'see "https://h/a?Signature=SECRET"',
        "x https://h:bad/a?Signature=SECRET y",
        "https://h/a?Signature=SECRET,https://h/b?Signature=SECRET",
    ],
)
def test_redact_never_leaks_query(text):
    assert "SECRET" not in redact(text)


def test_redact_leaves_plain_text_alone():
    assert redact("no data found for call 1637742300-27") == "no data found for call 1637742300-27"


@given(
    secret=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%+=", min_size=8, max_size=40),
    path=st.text(alphabet="abcdefghij/._-", max_size=20),
    before=st.text(max_size=20),
    after=st.sampled_from(["", " ", "\n", "'", '"', " tail"]),
)
def test_redact_property_no_query_survives(secret, path, before, after):
    url = f"https://obs.example.com/{path}?Signature={secret}"
    assert f"Signature={secret}" not in redact(f"{before} {url}{after}")
