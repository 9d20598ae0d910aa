"""The CC-FS connection bound the template states is the one its settings make.

template.yaml says the stack never has more than ``3 + BillDownloadConcurrency +
RecordingDownloadConcurrency x RecordingThreads`` requests in flight toward CC-FS. CloudFormation
cannot compute that, so this test does, from the translated template under its defaults, under each
samconfig environment and under other values: the sum over the SQS mappings of MaximumConcurrency x
the requests one invocation may hold, plus the tick (``tests.connection_bound``). A template change
that adds a consumer calling CC-FS, hard-codes a MaximumConcurrency or decouples the thread count
from ``RecordingThreads`` breaks the stated formula, and this test.
"""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from local.stack.cfn import StackModel, load_template
from local.stack.processes.procs import ROOT
from tests.connection_bound import stated_bound, template_bound

TEMPLATE = ROOT / "template.yaml"
REQUIRED = {  # parameters without a default: any valid value
    "CcfsBaseUrl": "https://ccfs.example.com:28443",
    "CcfsSecretArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:ccfs-AbCdEf",
    "CallbackSourceCidrs": "203.0.113.10/32",
}
FORMULA = "3 + BillDownloadConcurrency + RecordingDownloadConcurrency x RecordingThreads"


def _samconfig_environments() -> dict[str, dict[str, str]]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    environments = {}
    for name, section in config.items():
        overrides = (
            section.get("deploy", {}).get("parameters", {}).get("parameter_overrides")
            if isinstance(section, dict)
            else None
        )
        if overrides:
            environments[name] = dict(item.split("=", 1) for item in overrides)
    return environments


def _defaults() -> dict[str, Any]:
    parameters = load_template(TEMPLATE)["Parameters"]
    return {name: spec["Default"] for name, spec in parameters.items() if "Default" in spec}


SCENARIOS = {
    "defaults": {},
    **{f"samconfig-{name}": values for name, values in _samconfig_environments().items()},
    "small": {"BillDownloadConcurrency": "2", "RecordingDownloadConcurrency": "2", "RecordingThreads": "1"},
    "wide": {"BillDownloadConcurrency": "7", "RecordingDownloadConcurrency": "30", "RecordingThreads": "16"},
}


@pytest.mark.parametrize("overrides", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_the_stated_bound_is_what_the_template_configures(overrides: dict[str, str]) -> None:
    values = {**REQUIRED, **overrides}
    values = {k: v for k, v in values.items() if "<" not in str(v)}  # samconfig placeholders
    model = StackModel.build(TEMPLATE, values, "bound-test")
    env = {k: str(model.resolver().resolve(v)) for k, v in model.functions["DownloadFunction"].environment.items()
           if k == "RECORDING_CONCURRENCY"}  # fmt: skip
    assert template_bound(model, env) == stated_bound({**_defaults(), **overrides})


def test_defaults_and_descriptions_state_the_bound() -> None:
    parameters = load_template(TEMPLATE)["Parameters"]
    assert stated_bound(_defaults()) == 21  # the README's figure
    for name in ("BillDownloadConcurrency", "RecordingDownloadConcurrency", "RecordingThreads"):
        assert FORMULA in " ".join(parameters[name]["Description"].split()), name
    assert "MaxConcurrency" not in parameters  # the old name claimed a bound it did not keep
