"""ccfs.auth: the vendor's test vectors byte for byte, every rejection reason, and properties."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ccfs import auth
from ccfs.auth import SignatureError, canonical_request, pct, sign, verify

# ------------------------------------------------------------------ the reference's vectors (§2)

AK, SK = "testak", "testsk"
VECTOR_TIME = datetime(2018, 7, 2, 2, 43, 8, tzinfo=UTC)

A_PATH = "/CCFS/resource/ccfs/downloadBillFile"
A_HEADERS = {
    "Host": "10.0.0.1:28443",
    "Content-Type": "application/json;charset=UTF-8",
    "Content-Length": "104",
}
A_BODY = '{"request":{"version":"2.0"},"msgBody":{"billFileName":"20180702_9239cb50a8384bb0ab503441bf089446.zip"}}'
A_SIGNING_KEY = "b8b7183681b842d3944190746f4072832439af297b9da25b945513b5cd2620cb"
A_AUTHORIZATION = (
    "auth-v2/testak/2018-07-02T02:43:08Z/content-length;content-type;host/"
    "5be465b8b9367be46508c1829792af8f64e2f28ae7affca15ff22792a39b9c10"
)
A_CANONICAL = (
    "POST\n"
    "/CCFS/resource/ccfs/downloadBillFile\n"
    "content-length;content-type;host\n"
    "content-length:104\n"
    "content-type:application%2Fjson%3Bcharset%3DUTF-8\n"
    "host:10.0.0.1%3A28443\n"
    "%7B%22request%22%3A%7B%22version%22%3A%222.0%22%7D%2C%22msgBody%22%3A%7B%22billFileName%22%3A"
    "%2220180702_9239cb50a8384bb0ab503441bf089446.zip%22%7D%7D"
)

B_HEADERS = {"host": "10.0.0.1:28443"}
B_QUERY = {"a": "x/y", "b": "2 3"}
B_AUTHORIZATION = (
    "auth-v2/testak/2018-07-02T02:43:08Z/host/b49ae64f1d13d67d56b3dd1d638105ee2597420e3e3d35e99e057ce26e8c138c"
)


def secrets(ak: str) -> str | None:
    return {AK: SK}.get(ak)


def test_vector_a_body_is_104_bytes() -> None:
    assert len(A_BODY.encode()) == 104


def test_vector_a_authorization() -> None:
    assert sign(AK, SK, "POST", A_PATH, A_HEADERS, A_BODY, VECTOR_TIME) == A_AUTHORIZATION


def test_vector_a_signing_key() -> None:
    prefix = "auth-v2/testak/2018-07-02T02:43:08Z/content-length;content-type;host"
    assert auth._hmac_hex(SK, prefix) == A_SIGNING_KEY


def test_vector_a_canonical_request() -> None:
    headers = sorted((k.lower(), v) for k, v in A_HEADERS.items())
    names, canonical = canonical_request("POST", A_PATH, headers, A_BODY.encode())
    assert names == "content-length;content-type;host"
    assert canonical == A_CANONICAL
    # ...and the signature is the HMAC of that text under the reference's signing key.
    assert A_AUTHORIZATION.endswith("/" + auth._hmac_hex(A_SIGNING_KEY, A_CANONICAL))


def test_vector_b_authorization() -> None:
    assert sign(AK, SK, "GET", "/rest/x", B_HEADERS, None, VECTOR_TIME, query=B_QUERY) == B_AUTHORIZATION
    assert sign(AK, SK, "get", "/rest/x", B_HEADERS, "", VECTOR_TIME, query=list(B_QUERY.items())) == B_AUTHORIZATION


def test_vector_b_canonical_request() -> None:
    _, canonical = canonical_request("GET", "/rest/x", [("host", "10.0.0.1:28443")], b"", list(B_QUERY.items()))
    assert canonical == "GET\n/rest/x\na=x%2Fy&b=2%203\nhost\nhost:10.0.0.1%3A28443\n"


def test_empty_query_value_and_query_sorting() -> None:
    _, canonical = canonical_request("GET", "/p", [("host", "h")], b"", [("z", ""), ("a b", "1"), ("a", "2")])
    # Sorted as whole encoded strings: "a%20b=1" < "a=2" because "%" < "=".
    assert canonical.split("\n")[2] == "a%20b=1&a=2&z="


def test_verify_accepts_both_vectors_at_their_own_time() -> None:
    assert verify(A_AUTHORIZATION, "POST", A_PATH, A_HEADERS, A_BODY, secrets, now=VECTOR_TIME) == AK
    assert verify(B_AUTHORIZATION, "GET", "/rest/x", B_HEADERS, None, secrets, now=VECTOR_TIME, query=B_QUERY) == AK


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("/", "%2F"),
        (":", "%3A"),
        (" ", "%20"),
        ("{", "%7B"),
        ('"', "%22"),
        (";", "%3B"),
        ("=", "%3D"),
        ("AZaz09-._~", "AZaz09-._~"),
        ("%", "%25"),
        ("+", "%2B"),
        ("\n", "%0A"),
        ("中", "%E4%B8%AD"),
        ("ÿ", "%C3%BF"),
        ("", ""),
        (b"\xff\x00", "%FF%00"),
    ],
)
def test_pct(raw: str | bytes, encoded: str) -> None:
    assert pct(raw) == encoded


# ------------------------------------------------------------------ rejections

NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
HEADERS = {"Host": "ccfs.test:28443", "Content-Type": "application/json;charset=UTF-8", "Content-Length": "11"}
BODY = '{"a":"bcd"}'
PATH = "/v1/ccfs/callback"


def signed(**overrides: object) -> str:
    args: dict[str, object] = {
        "ak": AK,
        "sk": SK,
        "method": "POST",
        "path": PATH,
        "headers": HEADERS,
        "body": BODY,
        "timestamp": NOW,
    }
    args.update(overrides)
    return sign(**args)  # type: ignore[arg-type]


def check(authorization: str | None, **overrides: object) -> str:
    args: dict[str, object] = {
        "authorization": authorization,
        "method": "POST",
        "path": PATH,
        "headers": HEADERS,
        "body": BODY,
        "secret_for": secrets,
        "now": NOW,
    }
    args.update(overrides)
    return verify(**args)  # type: ignore[arg-type]


def reason_of(authorization: str | None, **overrides: object) -> str:
    with pytest.raises(SignatureError) as caught:
        check(authorization, **overrides)
    assert caught.value.reason in SignatureError.REASONS
    return caught.value.reason


def test_a_good_signature_verifies() -> None:
    assert check(signed()) == AK


def _replace_part(authorization: str, index: int, value: str) -> str:
    parts = authorization.split("/")
    parts[index] = value
    return "/".join(parts)


GOOD = signed()
GOOD_SIG = GOOD.rsplit("/", 1)[1]
MALFORMED = {
    "none": None,
    "empty": "",
    "no scheme": GOOD.removeprefix("auth-v2/"),
    "other scheme": "Bearer " + GOOD,
    "scheme upper case": "AUTH-V2" + GOOD.removeprefix("auth-v2"),
    "scheme with space": GOOD.replace("auth-v2/", "auth-v2 /", 1),
    "too few parts": GOOD.rsplit("/", 1)[0],
    "too many parts": GOOD + "/extra",
    "empty ak": _replace_part(GOOD, 1, ""),
    "ak with space": _replace_part(GOOD, 1, "test ak"),
    "signature upper-case hex": _replace_part(GOOD, 4, GOOD_SIG.upper()),
    "signature 63 digits": _replace_part(GOOD, 4, GOOD_SIG[:-1]),
    "signature 65 digits": _replace_part(GOOD, 4, GOOD_SIG + "0"),
    "signature not hex": _replace_part(GOOD, 4, "g" + GOOD_SIG[1:]),
    "signature base64": _replace_part(GOOD, 4, "W+R" + GOOD_SIG[3:]),
    "signature trailing newline": GOOD + "\n",
    "timestamp with space": _replace_part(GOOD, 2, "2026-11-21 10:00:00Z"),
    "timestamp without Z": _replace_part(GOOD, 2, "2026-11-21T10:00:00"),
    "timestamp with offset": _replace_part(GOOD, 2, "2026-11-21T10:00:00+00:00"),
    "timestamp with millis": _replace_part(GOOD, 2, "2026-11-21T10:00:00.000Z"),
    "timestamp month 13": _replace_part(GOOD, 2, "2026-13-21T10:00:00Z"),
    "timestamp 30 February": _replace_part(GOOD, 2, "2026-02-30T10:00:00Z"),
    "timestamp non-ASCII digits": _replace_part(GOOD, 2, "٢٠٢٦-11-21T10:00:00Z"),
    "signedHeaders unsorted": _replace_part(GOOD, 3, "host;content-type;content-length"),
    "signedHeaders duplicate": _replace_part(GOOD, 3, "content-length;host;host"),
    "signedHeaders empty": _replace_part(GOOD, 3, ""),
    "signedHeaders empty item": _replace_part(GOOD, 3, "content-length;;host"),
    "signedHeaders upper case": _replace_part(GOOD, 3, "Content-Length;Content-Type;Host"),
    "signedHeaders comma": _replace_part(GOOD, 3, "content-length,content-type,host"),
}


@pytest.mark.parametrize("authorization", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed(authorization: str | None) -> None:
    assert reason_of(authorization) == "malformed"


def test_malformed_message_does_not_echo_the_authorization() -> None:
    with pytest.raises(SignatureError) as caught:
        check(MALFORMED["signature not hex"])
    assert GOOD_SIG[1:] not in str(caught.value)


@pytest.mark.parametrize("secret", [None, ""])
def test_unknown_ak(secret: str | None) -> None:
    assert reason_of(signed(), secret_for=lambda ak: secret) == "unknown_ak"
    assert reason_of(signed(ak="otherak")) == "unknown_ak"


def test_timestamp_window() -> None:
    skew = timedelta(seconds=900)
    assert check(signed(timestamp=NOW - skew)) == AK
    assert check(signed(timestamp=NOW + skew)) == AK
    assert reason_of(signed(timestamp=NOW - skew - timedelta(seconds=1))) == "stale_timestamp"
    assert reason_of(signed(timestamp=NOW + skew + timedelta(seconds=1))) == "future_timestamp"
    assert reason_of(signed(timestamp=NOW - timedelta(seconds=61)), max_skew=60) == "stale_timestamp"
    assert reason_of(signed(timestamp=NOW + timedelta(seconds=61)), max_skew=60) == "future_timestamp"


def test_timestamp_is_checked_in_utc() -> None:
    shanghai = NOW.astimezone(timezone(timedelta(hours=8)))  # the same instant, another zone
    assert signed(timestamp=shanghai) == signed()
    assert check(signed(), now=shanghai) == AK


def test_host_not_signed() -> None:
    authorization = signed(headers={"Content-Type": HEADERS["Content-Type"]})
    assert reason_of(authorization) == "host_not_signed"


def test_missing_signed_header() -> None:
    authorization = signed(headers={**HEADERS, "X-Request-Id": "abc"})
    assert reason_of(authorization) == "missing_signed_header"
    assert check(authorization, headers={**HEADERS, "x-request-id": "abc"}) == AK


def test_content_length_mismatch() -> None:
    assert reason_of(signed(), body=BODY + " ") == "content_length_mismatch"
    assert reason_of(signed(), body="") == "content_length_mismatch"
    # Content-Length counts bytes, not characters.
    text = '{"a":"中"}'
    assert len(text) != len(text.encode())
    headers = {"Host": "h", "Content-Length": str(len(text))}
    assert reason_of(signed(headers=headers, body=text), headers=headers, body=text) == "content_length_mismatch"


def test_signature_mismatch() -> None:
    assert reason_of(signed(sk="othersk")) == "signature_mismatch"
    assert reason_of(signed(), method="PUT") == "signature_mismatch"
    assert reason_of(signed(), path=PATH + "/") == "signature_mismatch"
    assert reason_of(signed(), query={"x": "1"}) == "signature_mismatch"
    assert reason_of(signed(), body='{"a":"bce"}') == "signature_mismatch"
    assert reason_of(signed(), headers={**HEADERS, "Content-Type": "application/json"}) == "signature_mismatch"
    assert reason_of(signed(), headers={**HEADERS, "Host": "ccfs.test:28443 "}) == "signature_mismatch"  # untrimmed


def test_unsigned_headers_may_change() -> None:
    assert check(signed(), headers={**HEADERS, "X-Forwarded-For": "10.1.2.3"}) == AK


def test_header_names_are_case_insensitive() -> None:
    authorization = signed(headers={"HOST": "h", "content-TYPE": "t"})
    assert authorization.split("/")[3] == "content-type;host"
    assert check(authorization, headers={"Host": "h", "Content-Type": "t"}) == AK
    assert check(authorization, headers=[("host", "h"), ("CONTENT-TYPE", "t")]) == AK
    assert authorization == signed(headers=[("host", "h"), ("Content-Type", "t")])


def test_str_and_bytes_bodies_are_equivalent() -> None:
    text = '{"msg":"华为 ✓"}'
    headers = {"Host": "h", "Content-Length": str(len(text.encode()))}
    from_str = signed(headers=headers, body=text)
    from_bytes = signed(headers=headers, body=text.encode())
    assert from_str == from_bytes
    assert check(from_str, headers=headers, body=text.encode()) == AK
    assert check(from_bytes, headers=headers, body=text) == AK
    assert signed(body=None, headers={"Host": "h"}) == signed(body="", headers={"Host": "h"})
    assert signed(body=b"", headers={"Host": "h"}) == signed(body="", headers={"Host": "h"})


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        signed(timestamp=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone-aware"):
        check(signed(), now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ak": "a/k"}, "ak must be"),
        ({"ak": ""}, "ak must be"),
        ({"headers": {}}, "at least one header"),
        ({"headers": {"Host": "a", "host": "b"}}, "given twice"),
        ({"headers": {"Host": "a", "x/y": "b"}}, "invalid header name"),
        ({"headers": {"Host": "a", "x;y": "b"}}, "invalid header name"),
        ({"headers": {"Host": "a", "x y": "b"}}, "invalid header name"),
    ],
)
def test_sign_refuses_what_could_not_be_verified(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        signed(**overrides)


def test_no_secret_in_any_rejection_message() -> None:
    cases = [signed(sk="othersk"), signed(timestamp=NOW - timedelta(hours=1)), MALFORMED["signature 63 digits"]]
    for authorization in cases:
        with pytest.raises(SignatureError) as caught:
            check(authorization)
        message = str(caught.value)
        assert SK not in message and authorization.rsplit("/", 1)[1] not in message and BODY not in message


# ------------------------------------------------------------------ properties

TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
header_names = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda n: n.lower() not in ("host", "content-length")
)
header_values = st.text(alphabet=string.printable.replace("\n", "").replace("\r", ""), max_size=40)
extra_headers = st.dictionaries(header_names, header_values, max_size=6).filter(
    lambda d: len({k.lower() for k in d}) == len(d)
)
paths = st.text(alphabet=string.ascii_letters + string.digits + "/-._~%!$&'()*+,;=:@ 中", max_size=60).map(
    lambda p: "/" + p
)
queries = st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5)
ascii_bodies = st.text(alphabet=string.printable, max_size=500)
any_bodies = st.text(max_size=300)
methods = st.sampled_from(["POST", "GET", "PUT", "post"])
PROPERTY = settings(max_examples=200, deadline=None)


def roundtrip(
    body: str | bytes, headers: dict[str, str] | None = None, path: str = PATH, query: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    raw = body.encode() if isinstance(body, str) else body
    all_headers = {"Host": "ccfs.test:28443", "Content-Length": str(len(raw)), **(headers or {})}
    authorization = sign(AK, SK, "POST", path, all_headers, body, NOW, query=query)
    assert verify(authorization, "POST", path, all_headers, body, secrets, now=NOW, query=query) == AK
    return authorization, all_headers


@PROPERTY
@given(body=ascii_bodies)
def test_roundtrip_ascii_bodies(body: str) -> None:
    roundtrip(body)


@PROPERTY
@given(body=any_bodies)
def test_roundtrip_non_ascii_bodies(body: str) -> None:
    authorization, headers = roundtrip(body)
    # The same text as bytes verifies too.
    assert verify(authorization, "POST", PATH, headers, body.encode(), secrets, now=NOW) == AK


@PROPERTY
@given(headers=extra_headers, method=methods)
def test_roundtrip_extra_headers(headers: dict[str, str], method: str) -> None:
    all_headers = {"Host": "h", **headers}
    authorization = sign(AK, SK, method, PATH, all_headers, BODY, NOW)
    assert authorization.split("/")[3] == ";".join(sorted(n.lower() for n in all_headers))
    # Received with other name cases, in another order, with an unsigned extra header.
    received = {name.swapcase(): value for name, value in reversed(all_headers.items())} | {"x-unsigned": "1"}
    assert verify(authorization, method.upper(), PATH, received, BODY, secrets, now=NOW) == AK


@PROPERTY
@given(path=paths, query=queries)
def test_roundtrip_paths_and_queries(path: str, query: dict[str, str]) -> None:
    roundtrip(BODY, path=path, query=query)
    assert verify(
        sign(AK, SK, "GET", path, {"host": "h"}, None, NOW, query=query),
        "GET",
        path,
        {"host": "h"},
        None,
        secrets,
        now=NOW,
        query=list(reversed(query.items())),
    )


def _flip(data: bytes, index: int, mask: int) -> bytes:
    out = bytearray(data)
    out[index % len(out)] ^= mask
    return bytes(out)


@PROPERTY
@given(body=st.binary(min_size=1, max_size=300), index=st.integers(min_value=0), mask=st.integers(1, 255))
def test_flipping_a_body_byte_is_rejected(body: bytes, index: int, mask: int) -> None:
    authorization, headers = roundtrip(body)
    with pytest.raises(SignatureError) as caught:
        verify(authorization, "POST", PATH, headers, _flip(body, index, mask), secrets, now=NOW)
    assert caught.value.reason == "signature_mismatch"


@PROPERTY
@given(path=paths, index=st.integers(min_value=0), replacement=st.characters(codec="utf-8"))
def test_changing_a_path_character_is_rejected(path: str, index: int, replacement: str) -> None:
    authorization, headers = roundtrip(BODY, path=path)
    i = index % len(path)
    assume(path[i] != replacement)
    tampered = path[:i] + replacement + path[i + 1 :]
    with pytest.raises(SignatureError):
        verify(authorization, "POST", tampered, headers, BODY, secrets, now=NOW)


@PROPERTY
@given(
    headers=extra_headers.filter(bool),
    pick=st.integers(min_value=0),
    index=st.integers(min_value=0),
    replacement=st.characters(codec="utf-8"),
)
def test_changing_a_signed_header_value_is_rejected(
    headers: dict[str, str], pick: int, index: int, replacement: str
) -> None:
    authorization, all_headers = roundtrip(BODY, headers=headers)
    names = list(all_headers)
    name = names[pick % len(names)]
    value = all_headers[name]
    if value:
        i = index % len(value)
        assume(value[i] != replacement)
        tampered_value = value[:i] + replacement + value[i + 1 :]
    else:
        tampered_value = replacement
    with pytest.raises(SignatureError):
        verify(authorization, "POST", PATH, {**all_headers, name: tampered_value}, BODY, secrets, now=NOW)


@PROPERTY
@given(body=any_bodies, delta=st.sampled_from([-1, 1]))
def test_moving_the_timestamp_one_second_is_rejected(body: str, delta: int) -> None:
    authorization, headers = roundtrip(body)
    moved = (NOW + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tampered = _replace_part(authorization, 2, moved)
    with pytest.raises(SignatureError) as caught:
        verify(tampered, "POST", PATH, headers, body, secrets, now=NOW)
    assert caught.value.reason == "signature_mismatch"  # inside the window: only the signature catches it


@PROPERTY
@given(body=any_bodies, index=st.integers(0, 63), digit=st.sampled_from("0123456789abcdef"))
def test_changing_a_signature_digit_is_rejected(body: str, index: int, digit: str) -> None:
    authorization, headers = roundtrip(body)
    signature = authorization.rsplit("/", 1)[1]
    assume(signature[index] != digit)
    tampered = _replace_part(authorization, 4, signature[:index] + digit + signature[index + 1 :])
    with pytest.raises(SignatureError) as caught:
        verify(tampered, "POST", PATH, headers, body, secrets, now=NOW)
    assert caught.value.reason == "signature_mismatch"


@PROPERTY
@given(authorization=st.one_of(st.text(max_size=200), st.just(GOOD).map(lambda g: g[:-5])))
def test_arbitrary_authorization_values_only_raise_signature_error(authorization: str) -> None:
    with pytest.raises(SignatureError):
        check(authorization)


def test_signed_content_length_absent_is_checked_against_the_body_received() -> None:
    """Behind API Gateway's REST proxy the event has no Content-Length: a signature over it is
    checked against the raw body's length, which is what the sender signed for the body it sent."""
    authorization = sign(AK, SK, "POST", PATH, HEADERS, BODY, NOW)
    forwarded = {k: v for k, v in HEADERS.items() if k != "Content-Length"}
    assert verify(authorization, "POST", PATH, forwarded, BODY, secrets, now=NOW) == AK
    # the body is still covered: another body of another length, or of the same length, fails
    for other in ('{"a":"bcde"}', '{"a":"bce"}'):
        with pytest.raises(SignatureError) as caught:
            verify(authorization, "POST", PATH, forwarded, other, secrets, now=NOW)
        assert caught.value.reason == "signature_mismatch"
    # a Content-Length that is present must still equal the body's length
    with pytest.raises(SignatureError) as caught:
        verify(authorization, "POST", PATH, {**forwarded, "Content-Length": "12"}, BODY, secrets, now=NOW)
    assert caught.value.reason == "content_length_mismatch"
