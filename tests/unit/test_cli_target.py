"""The CLI's target: a deployed stack read from its CloudFormation outputs, or a `make serve` JSON line;
and its one output shape (text or --json, exit code from the checks)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import click
import pytest
from click.testing import CliRunner
from moto import mock_aws

from aicc_export.output import Result, finish
from aicc_export.target import Target, TargetError

_TEMPLATE = {
    "Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
    "Outputs": {
        "ExportBucketName": {"Value": "exports-bucket"},
        "JobsTableName": {"Value": "jobs-table"},
        "RequestQueueUrl": {"Value": "https://sqs.eu-west-1.amazonaws.com/123456789012/req"},
        "RecordingDLQUrl": {"Value": "https://sqs.eu-west-1.amazonaws.com/123456789012/rec-dlq"},
        "DownloadFunctionName": {"Value": "dl-fn"},
        "AlarmTopicArn": {"Value": "arn:aws:sns:eu-west-1:123456789012:alarms"},
    },
}


def test_a_deployed_stack_is_read_from_its_outputs() -> None:
    with mock_aws():
        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName="prod-export", TemplateBody=json.dumps(_TEMPLATE)
        )
        target = Target.from_stack("prod-export", region="eu-west-1")
    assert (target.bucket, target.jobs_table, target.region) == ("exports-bucket", "jobs-table", "eu-west-1")
    assert target.queues == {
        "RequestQueue": "https://sqs.eu-west-1.amazonaws.com/123456789012/req",
        "RecordingDLQ": "https://sqs.eu-west-1.amazonaws.com/123456789012/rec-dlq",
    }
    assert target.functions == {"DownloadFunction": "dl-fn"}
    assert target.alarm_topic_arn.endswith(":alarms")
    assert target.endpoint_url is None and not target.is_local


def test_a_missing_stack_says_which_name_and_what_to_pass() -> None:
    with mock_aws(), pytest.raises(TargetError) as raised:
        Target.from_stack("no-such-stack", region="eu-west-1")
    assert "no-such-stack" in raised.value.message and "--stack" in raised.value.message
    assert raised.value.exit_code == 2


def test_a_stack_without_the_outputs_is_not_taken_for_an_export_stack() -> None:
    with mock_aws():
        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName="other", TemplateBody=json.dumps({"Resources": _TEMPLATE["Resources"]})
        )
        with pytest.raises(TargetError) as raised:
            Target.from_stack("other", region="eu-west-1")
    assert "ExportBucketName" in raised.value.message and "JobsTableName" in raised.value.message


def test_the_serve_line_is_found_among_other_lines(tmp_path: Path) -> None:
    line = {
        "endpoint_url": "http://127.0.0.1:5123",
        "bucket": "b",
        "jobs_table": "t",
        "queues": {"RequestQueue": "http://127.0.0.1:5123/000000000000/req"},
        "callback_url": "https://api.example/prod/callback",
    }
    path = tmp_path / "serve.json"
    path.write_text("starting ...\n" + json.dumps(line) + "\nrunning; Ctrl-C to stop\n", encoding="utf-8")
    target = Target.from_local(str(path))
    assert target.is_local and target.endpoint_url == "http://127.0.0.1:5123"
    assert (target.bucket, target.jobs_table, target.region) == ("b", "t", "us-east-1")
    assert target.queues["RequestQueue"].endswith("/req")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "not the JSON line"), ('{"bucket": "b"}', "KeyError"), ("{not json", "not the JSON line")],
)
def test_a_file_that_is_not_the_serve_line_is_refused_with_what_to_do(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "serve.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TargetError) as raised:
        Target.from_local(str(path))
    assert expected in raised.value.message and "make serve" in raised.value.message


def test_an_unreadable_serve_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(TargetError) as raised:
        Target.from_local(str(tmp_path / "absent.json"))
    assert "absent.json" in raised.value.message


def _command(checks: list[tuple[str, bool]]) -> click.Command:
    @click.command()
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def cmd(ctx: click.Context, as_json: bool) -> None:
        ctx.obj = {"json": as_json}
        result = Result("probe", data={"n": 3}, lines=["a listing"])
        for name, ok in checks:
            result.check(name, ok, detail=f"{name} detail", fix=f"fix {name}")
        finish(ctx, result)

    return cmd


def test_output_exits_zero_only_when_every_check_passed() -> None:
    runner = CliRunner()
    good = runner.invoke(_command([("one", True), ("two", True)]), [])
    bad = runner.invoke(_command([("one", True), ("two", False)]), [])
    assert good.exit_code == 0 and "PASS" in good.output and "fix" not in good.output
    assert bad.exit_code == 1 and "FAIL" in bad.output and "-> fix two" in bad.output
    assert "a listing" in good.output


def test_json_output_carries_the_checks_and_the_data() -> None:
    result = CliRunner().invoke(_command([("one", True), ("two", False)]), ["--json"])
    body = json.loads(result.output)
    assert result.exit_code == 1
    assert body["ok"] is False and body["data"] == {"n": 3}
    assert [(c["name"], c["ok"]) for c in body["checks"]] == [("one", True), ("two", False)]


@pytest.mark.parametrize(
    "args",
    [
        ["backfill", "2026-11-31", "2026-12-01"],
        ["backfill", "2026-11-01", "yesterday"],
        ["canary", "--date", "2026/11/01"],
        ["find", "1637742300-27", "--date", "11-01-2026"],
        ["verify", "--date", "2026-13-01"],
        ["reexport", "--date", "x"],
        ["retry-failed", "--date", "2026-11"],
    ],
)
def test_every_day_argument_is_refused_before_the_stack_is_touched(tmp_path: Path, args: list[str]) -> None:
    from aicc_export.main import cli

    absent = tmp_path / "never-read.json"  # reading it would fail differently: the day is checked first
    result = CliRunner().invoke(cli, ["--local", str(absent), *args])
    assert result.exit_code == 2
    assert "is not a date: use YYYY-MM-DD" in result.output and "never-read" not in result.output


def test_a_command_reads_the_functions_settings_once_per_target() -> None:
    from aicc_export.deployment import settings_of
    from aicc_export.stack_info import stack_info
    from tests.conftest import AwsNames, app_env

    env = app_env(AwsNames(secret_arn="arn:aws:secretsmanager:us-east-1:1:secret:x"))
    line = {"function_env": {"RequestExportFunction": env}}
    target = Target(region="us-east-1", bucket="b", jobs_table="t", queues={}, local=line)
    first = settings_of(target)
    line["function_env"] = {}  # a second read would now fail: the first answer is kept
    assert settings_of(target) is first
    with mock_aws():  # the zones' secret read stays in-process (none there: TENANT_TIMEZONE, with a note)
        info = stack_info(target)
        assert stack_info(target) is info
    assert info.tenants == first.tenants and info.notes
