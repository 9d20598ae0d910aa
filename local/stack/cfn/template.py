"""Loading and translating ``template.yaml``: the CloudFormation-tag-aware YAML loader and the
``samtranslator`` step a ``sam deploy`` performs (``s3://`` code locations, a stub managed-policy
loader), plus the pseudo parameters (region, account, stack name) every later layer resolves.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
_LOCAL_CODE = "s3://local/x.zip"


class TemplateError(RuntimeError):
    """The template cannot be turned into a local stack (names what and why)."""


# ---------------------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref x`` / ``!GetAtt a.b`` / ``!Sub ...`` into their JSON forms."""


def _cfn_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    """The SAM template as plain JSON-shaped data (tags expanded)."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)
    except FileNotFoundError:
        raise TemplateError(f"{path} not found") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return data


# ---------------------------------------------------------------------------- translation


class _AnyManagedPolicy(dict[str, str]):
    """Managed-policy map that knows every name (fake ARNs: IAM is not modelled locally)."""

    def __missing__(self, key: str) -> str:
        return f"arn:aws:iam::aws:policy/{key}"

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: str, default: Any = None) -> str:
        return self[key]


class _StubPolicyLoader:
    def load(self) -> dict[str, str]:
        return _AnyManagedPolicy()


def pseudo_parameters(stack_name: str) -> dict[str, str]:
    return {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack_name}/local",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": "",
    }


def translate(
    sam_template: dict[str, Any], parameters: Mapping[str, Any], stack_name: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """``(cfn_template, code_uris)``: the samtranslator output and each function's / layer's
    original local code directory (logical id -> CodeUri/ContentUri)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    template = copy.deepcopy(sam_template)
    code_uris: dict[str, str] = {}
    globals_fn = template.get("Globals", {}).get("Function", {})
    if isinstance(globals_fn.get("CodeUri"), str):
        code_uris["*"] = globals_fn["CodeUri"]
        globals_fn["CodeUri"] = _LOCAL_CODE
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                if isinstance(props[key], str):
                    code_uris[logical_id] = props[key]
                props[key] = _LOCAL_CODE
    values = {**pseudo_parameters(stack_name), **{k: v for k, v in parameters.items() if v is not None}}
    # This is ``samtranslator.translator.transform.transform`` step by step, except that the
    # Translator gets an explicit boto3 session: ``transform`` builds one from the environment to
    # learn the region (NoRegionFound otherwise), and the library must not touch os.environ.
    ArnGenerator.BOTO_SESSION_REGION_NAME = REGION
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    policies = _StubPolicyLoader()
    sam_logger = logging.getLogger("samtranslator")
    level = sam_logger.level
    sam_logger.setLevel(logging.ERROR)  # feature-toggle chatter on every translation
    try:
        to_py27_compatible_template(template, values)
        cfn = translator.translate(template, parameter_values=values, get_managed_policy_map=policies.load)
        cfn = undo_mark_unicode_str_in_template(cfn)
    except Exception as exc:  # samtranslator raises a zoo of types, all meaning "bad template"
        raise TemplateError(f"samtranslator could not translate the template: {exc}") from exc
    finally:
        sam_logger.setLevel(level)
    return cfn, code_uris
