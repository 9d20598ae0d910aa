"""The CC-FS secret is read in the region its ARN names, not the function's (issue 11 §3): a secret
kept in one region for stacks in several is a normal set-up, and GetSecretValue in another region
answers ResourceNotFound."""

from __future__ import annotations

import json
from typing import Any

import boto3

from exporter import ccfs_factory
from exporter.config import Settings


def test_secret_arn_in_another_region_is_read_there(aws: Any) -> None:
    other = boto3.client("secretsmanager", region_name="eu-west-1")
    arn = other.create_secret(Name="aicc-export/eu/ccfs", SecretString=json.dumps({"ak": "eu-ak", "sk": "eu-sk"}))[
        "ARN"
    ]
    assert ":eu-west-1:" in arn and boto3.session.Session().region_name == "us-east-1"
    settings = Settings.from_env().model_copy(update={"ccfs_secret_arn": arn})
    assert ccfs_factory.credentials(settings, settings.tenants[0]) == ("eu-ak", "eu-sk")
    assert ccfs_factory.secret_for(settings)("eu-ak") == "eu-sk"


def test_secret_in_the_functions_region_still_uses_the_shared_client(aws: Any) -> None:
    settings = Settings.from_env()
    assert f":{boto3.session.Session().region_name}:" in settings.ccfs_secret_arn
    assert ccfs_factory.credentials(settings, settings.tenants[0]) == ("demo-ak", "demo-sk")
    from exporter.aws import client

    assert client("secretsmanager", "us-east-1") is client("secretsmanager")  # no second client
