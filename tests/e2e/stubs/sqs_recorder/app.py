"""Stub SQS consumer for the poller tests: behaviour is chosen by each message body.

``{"id": "a"}`` succeeds; ``{"id": "b", "fail": true}`` is reported in batchItemFailures;
``{"id": "c", "raise": true}`` makes the whole invocation raise; ``{"id": "d", "bad_report": true}``
returns a malformed batchItemFailures. With ``"once": true`` the behaviour applies to the first
delivery only. Every record seen is appended to ``$STUB_LOG`` (JSON lines) with its receive count,
so the test can tell what was delivered how often.
"""

import json
import os
import time


def lambda_handler(event, context):
    failures = []
    with open(os.environ["STUB_LOG"], "a", encoding="utf-8") as log:
        for record in event["Records"]:
            body = json.loads(record["body"])
            log.write(
                json.dumps(
                    {
                        "id": body["id"],
                        "messageId": record["messageId"],
                        "count": int(record["attributes"]["ApproximateReceiveCount"]),
                        "batch": len(event["Records"]),
                        "eventSource": record["eventSource"],
                        "eventSourceARN": record["eventSourceARN"],
                        "keys": sorted(record),
                        "attribute_keys": sorted(record["attributes"]),
                        "messageAttributes": record["messageAttributes"],
                        "remaining_ms": context.get_remaining_time_in_millis(),
                        "function_name": context.function_name,
                    }
                )
                + "\n"
            )
            if body.get("once") and int(record["attributes"]["ApproximateReceiveCount"]) > 1:
                continue
            if body.get("sleep"):
                time.sleep(body["sleep"])
            if body.get("raise"):
                raise RuntimeError("stub: raise requested")
            if body.get("bad_report"):
                return {"batchItemFailures": [{"itemIdentifier": ""}]}
            if body.get("fail"):
                failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
