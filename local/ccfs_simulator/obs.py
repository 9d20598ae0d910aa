"""The simulator's stand-in for OBS pre-signed URLs (query-string authentication).

``/obs/{bucket}/{account}/{yyyyMMdd}{file_name}?AccessKeyId=..&Expires=<epoch>&Signature=<hex>``
where Signature = HMAC-SHA256(server secret, ``GET\\n{path}\\n{Expires}\\n{AccessKeyId}``). Real OBS
uses base64 HMAC-SHA1; the shape (three query parameters, 403 XML on failure) is what matters here.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

__all__ = ["BUCKET", "ObsSigner", "error_xml"]

BUCKET = "aicc-recordings"


@dataclass(frozen=True)
class ObsSigner:
    secret: bytes
    access_key_id: str

    def signature(self, path: str, expires: int) -> str:
        message = f"GET\n{path}\n{expires}\n{self.access_key_id}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def presign(self, base_url: str, path: str, expires: int) -> str:
        query = urlencode(
            {"AccessKeyId": self.access_key_id, "Expires": str(expires), "Signature": self.signature(path, expires)}
        )
        return f"{base_url}{path}?{query}"

    def check(self, path: str, params: dict[str, str]) -> tuple[str, int] | None:
        """``None`` when the signature is right (expiry checked by the caller), else (code, expires)."""
        try:
            expires = int(params.get("Expires", ""))
        except ValueError:
            return ("AccessDenied", 0)
        if params.get("AccessKeyId") != self.access_key_id or "Signature" not in params:
            return ("AccessDenied", expires)
        if not hmac.compare_digest(self.signature(path, expires), params["Signature"]):
            return ("SignatureDoesNotMatch", expires)
        return None


def error_xml(code: str, message: str, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>ccfs-simulator</HostId></Error>"
    ).encode()
