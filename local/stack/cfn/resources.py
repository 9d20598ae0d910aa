"""Creating the template's data resources in moto through boto3, property by property: DynamoDB
tables (keys, GSIs, TTL, PITR, SSE), S3 buckets (versioning, lifecycle, public access block,
policies) and SQS queues (redrive, retention), in dependency order, with CloudFormation-style
physical names ``{stack}-{LogicalId}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from local.stack.cfn.intrinsics import Unresolvable, references
from local.stack.cfn.model import StackModel
from local.stack.cfn.template import REGION, TemplateError

# ---------------------------------------------------------------------------- creation


def _physical_name(stack_name: str, logical_id: str, kind: str) -> str:
    if kind == "AWS::S3::Bucket":
        return f"{stack_name}-{logical_id}".lower()[:63]
    if kind == "AWS::SQS::Queue":
        return f"{stack_name}-{logical_id}"[:75]
    return f"{stack_name}-{logical_id}"[:255]


def _order(resources: Mapping[str, dict[str, Any]]) -> list[str]:
    """Dependencies first (a queue after its DLQ, a bucket policy after its bucket)."""
    done: list[str] = []
    visiting: set[str] = set()

    def visit(lid: str) -> None:
        if lid in done:
            return
        if lid in visiting:
            raise TemplateError(f"circular reference through {lid}")
        visiting.add(lid)
        for dep in sorted(references(resources[lid].get("Properties") or {})):
            if dep in resources:
                visit(dep)
        visiting.discard(lid)
        done.append(lid)

    for lid in resources:
        visit(lid)
    return done


def _lifecycle_rules(rules: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """CloudFormation's LifecycleConfiguration rules in the S3 API's shape."""
    out: list[dict[str, Any]] = []
    for rule in rules:
        api: dict[str, Any] = {"ID": rule.get("Id", f"rule{len(out)}"), "Status": rule.get("Status", "Enabled")}
        prefix = rule.get("Prefix")
        api["Filter"] = {"Prefix": prefix or ""}
        if "ExpirationInDays" in rule:
            api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        elif rule.get("ExpiredObjectDeleteMarker") is not None:
            api["Expiration"] = {"ExpiredObjectDeleteMarker": bool(rule["ExpiredObjectDeleteMarker"])}
        if "NoncurrentVersionExpiration" in rule:
            api["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
            }
        if "AbortIncompleteMultipartUpload" in rule:
            api["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            }
        for transition in rule.get("Transitions") or []:
            api.setdefault("Transitions", []).append(
                {"Days": int(transition["TransitionInDays"]), "StorageClass": transition["StorageClass"]}
            )
        out.append(api)
    return out


def _tags(props: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in props.get("Tags") or []]


@dataclass
class CreatedResources:
    """Physical names of the created data resources."""

    physical: dict[str, str]  # logical id -> Ref value (table/bucket name, queue URL)
    attributes: dict[str, dict[str, str]]  # logical id -> GetAtt values
    types: dict[str, str]  # logical id -> resource type
    notes: list[str]  # properties applied differently or not at all, and why

    def queue_url(self, logical_id: str) -> str:
        return self.physical[logical_id]

    def queue_arn(self, logical_id: str) -> str:
        return self.attributes[logical_id]["Arn"]


def create_data_resources(
    model: StackModel,
    session: Any,
    endpoint_url: str,
    queue_overrides: Mapping[str, Any] | None = None,
) -> CreatedResources:
    """Create the template's data resources in moto (``session`` is a boto3 Session).

    ``queue_overrides`` (e.g. ``{"VisibilityTimeout": 5}``) replace those properties on every queue
    that has them or is a redrive source: the local stack's only deliberate deviation.
    """
    resolver = model.resolver()
    clients: dict[str, Any] = {}

    def client(name: str) -> Any:
        if name not in clients:
            clients[name] = session.client(name, endpoint_url=endpoint_url, region_name=REGION)
        return clients[name]

    created = CreatedResources(physical={}, attributes={}, types={}, notes=list(model.dropped))
    for lid in _order(model.data_resources):
        res = model.data_resources[lid]
        kind = res["Type"]
        try:
            props = resolver.resolve(res.get("Properties") or {}) or {}
        except Unresolvable as exc:
            raise TemplateError(f"{lid}: {exc} cannot be resolved locally") from None
        created.types[lid] = kind
        if kind == "AWS::DynamoDB::Table":
            _create_table(lid, props, model.stack_name, client("dynamodb"), created)
        elif kind == "AWS::S3::Bucket":
            _create_bucket(lid, props, model.stack_name, client("s3"), created)
        elif kind == "AWS::S3::BucketPolicy":
            # Not applied: moto evaluates bucket policies without request context, so a Deny
            # conditioned on aws:SecureTransport=false (or on any other condition key) matches
            # every request to the plain-HTTP moto endpoint and makes the bucket unusable.
            created.physical[lid] = props["Bucket"]
            created.notes.append(
                f"{lid}: not applied (moto evaluates bucket policies without request context; "
                "its conditional Deny statements would deny every local request)"
            )
        elif kind == "AWS::SQS::Queue":
            if queue_overrides:
                for key, value in queue_overrides.items():
                    if key in props or "RedrivePolicy" in props:
                        created.notes.append(f"{lid}.{key}: {props.get(key, 'default')} -> {value} (local override)")
                        props[key] = value
            _create_queue(lid, props, model.stack_name, client("sqs"), created)
        elif kind == "AWS::SNS::Topic":
            _create_topic(lid, props, model.stack_name, client("sns"), created)
        resolver.physical = created.physical
        resolver.attributes = created.attributes
    return created


def _create_table(lid: str, props: dict[str, Any], stack: str, ddb: Any, out: CreatedResources) -> None:
    name = props.get("TableName") or _physical_name(stack, lid, "AWS::DynamoDB::Table")
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput", "StreamSpecification"):
        if key in props:
            args[key] = props[key]
    if "DeletionProtectionEnabled" in props:
        args["DeletionProtectionEnabled"] = bool(props["DeletionProtectionEnabled"])
    sse = props.get("SSESpecification")
    if sse:
        args["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled", False))}
        if sse.get("SSEType"):
            args["SSESpecification"]["SSEType"] = sse["SSEType"]
        if sse.get("KMSMasterKeyId"):
            args["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
    if props.get("Tags"):
        args["Tags"] = _tags(props)
    description = ddb.create_table(**args)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr and pitr.get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    out.physical[lid] = name
    out.attributes[lid] = {"Arn": description["TableArn"]}
    if description.get("LatestStreamArn"):
        out.attributes[lid]["StreamArn"] = description["LatestStreamArn"]


def _create_bucket(lid: str, props: dict[str, Any], stack: str, s3: Any, out: CreatedResources) -> None:
    name = props.get("BucketName") or _physical_name(stack, lid, "AWS::S3::Bucket")
    lock = props.get("ObjectLockConfiguration") or {}
    if props.get("ObjectLockEnabled") in (True, "true") or lock.get("ObjectLockEnabled") == "Enabled":
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)  # S3 turns versioning on with it
        if "Rule" in lock:
            s3.put_object_lock_configuration(
                Bucket=name, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": lock["Rule"]}
            )
    else:
        s3.create_bucket(Bucket=name)
    if "BucketEncryption" in props:
        rules = []
        for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
            default = rule.get("ServerSideEncryptionByDefault") or {}
            api_rule: dict[str, Any] = {
                "ApplyServerSideEncryptionByDefault": {
                    k: v
                    for k, v in {
                        "SSEAlgorithm": default.get("SSEAlgorithm"),
                        "KMSMasterKeyID": default.get("KMSMasterKeyID"),
                    }.items()
                    if v
                }
            }
            if "BucketKeyEnabled" in rule:
                api_rule["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
            rules.append(api_rule)
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
        )
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={k: bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()},
        )
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if "LifecycleConfiguration" in props:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": _lifecycle_rules(props["LifecycleConfiguration"]["Rules"])}
        )
    if props.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(props)})
    for key in sorted(set(props) - _BUCKET_PROPS):
        out.notes.append(f"{lid}.{key}: not applied locally")
    out.physical[lid] = name
    out.attributes[lid] = {
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
    }


_BUCKET_PROPS = {
    "BucketName",
    "ObjectLockEnabled",
    "ObjectLockConfiguration",
    "BucketEncryption",
    "VersioningConfiguration",
    "PublicAccessBlockConfiguration",
    "OwnershipControls",
    "LifecycleConfiguration",
    "Tags",
}

_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


def _create_topic(lid: str, props: dict[str, Any], stack: str, sns: Any, out: CreatedResources) -> None:
    """The topic alone: its subscriptions are not created (no mail leaves the local stack), so
    `aicc-export doctor` finds none, as on a fresh deploy whose e-mail nobody confirmed yet; an
    operator subscribes a queue to it to see the alarms' messages."""
    name = props.get("TopicName") or _physical_name(stack, lid, "AWS::SNS::Topic")
    attributes = {k: str(props[k]) for k in ("DisplayName",) if k in props}
    arn = sns.create_topic(Name=name, Attributes=attributes, Tags=_tags(props))["TopicArn"]
    out.physical[lid] = arn
    out.attributes[lid] = {"TopicArn": arn, "TopicName": name}
    out.notes.append(f"{lid}: created without subscriptions (no mail leaves the local stack)")


def _create_queue(lid: str, props: dict[str, Any], stack: str, sqs: Any, out: CreatedResources) -> None:
    name = props.get("QueueName") or _physical_name(stack, lid, "AWS::SQS::Queue")
    if props.get("FifoQueue") and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {}
    for key in _QUEUE_ATTRIBUTES:
        if key in props:
            value = props[key]
            attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
    for key in ("RedrivePolicy", "RedriveAllowPolicy"):
        if key in props:
            value = props[key]
            attributes[key] = value if isinstance(value, str) else json.dumps(value)
    kwargs: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if props.get("Tags"):
        kwargs["tags"] = {t["Key"]: t["Value"] for t in _tags(props)}
    url = sqs.create_queue(**kwargs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    out.physical[lid] = url
    out.attributes[lid] = {"Arn": arn, "QueueName": name, "QueueUrl": url}
