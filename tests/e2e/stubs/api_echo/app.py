"""Stub API handler: echoes the proxy event; ``?status=NNN`` picks the status, ``?raise=1`` raises,
``?binary=1`` answers a base64 body."""

import base64
import json


def lambda_handler(event, context):
    query = event.get("queryStringParameters") or {}
    if query.get("raise"):
        raise RuntimeError("stub: raise requested")
    if query.get("malformed"):
        return {"body": "no status code"}
    if query.get("binary"):
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(b"\x00\xff\x10").decode(),
            "isBase64Encoded": True,
        }
    return {
        "statusCode": int(query.get("status", 200)),
        "headers": {"Content-Type": "application/json", "X-Stub": "1"},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "body": json.dumps({"event": event, "function_name": context.function_name}),
    }
