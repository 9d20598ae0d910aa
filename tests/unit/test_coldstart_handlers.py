"""Cold-start choices that a later import would silently undo (issue 7, bench coldstart).

What each handler leaves out of ``import app`` stays out: the CC-FS HTTP client and the Tracer
(callback), Powertools Batch and httpx (request_export: schedule ticks never use them), Powertools'
parser models (download: Batch is imported before pydantic, which halves its import).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_ABSENT = {
    "callback": ["httpx", "ccfs.client", "aws_xray_sdk"],
    "request_export": ["aws_lambda_powertools.utilities.batch", "httpx", "aws_xray_sdk"],
    "download": ["aws_lambda_powertools.utilities.parser"],
}


@pytest.mark.parametrize("function", sorted(_ABSENT))
def test_import_app_leaves_out_what_the_cold_path_does_not_need(function: str) -> None:
    code = ROOT / "functions" / function
    script = (
        f"import sys, json; sys.path[:0] = [{str(code)!r}, {str(ROOT / 'layers' / 'shared')!r}]; import app; "
        f"print(json.dumps([m for m in {_ABSENT[function]!r} if m in sys.modules]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    out = subprocess.run([sys.executable, "-c", script], cwd=code, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
