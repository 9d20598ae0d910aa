"""template.yaml -> the local stack's resources and function specs.

The template is the single source of truth: it is loaded with a CloudFormation-tag-aware YAML
loader, translated by ``samtranslator`` (as ``sam deploy`` would, with ``s3://`` code locations and
a stub managed-policy loader), and then

* the data resources (``AWS::DynamoDB::Table``, ``AWS::S3::Bucket``, ``AWS::S3::BucketPolicy``,
  ``AWS::SQS::Queue``) are created in moto directly through boto3, property by property, with a
  small intrinsic-function resolver. moto's CloudFormation was tried and dropped: it reports
  CREATE_COMPLETE but ignores ``TimeToLiveSpecification``, ``LifecycleConfiguration``,
  ``PublicAccessBlockConfiguration`` and does not support ``AWS::S3::BucketPolicy`` at all;
* the functions (handler, timeout, memory, merged Globals environment, layers), their SQS event
  source mappings, schedules, on-failure destinations and the REST API route are read from the
  translated resources, so the local pollers and HTTP front behave as the deployed stack would.

Physical names follow CloudFormation's ``{stack}-{LogicalId}`` pattern without the random suffix
(buckets lower-cased), since every local run starts from an empty moto.
"""

from local.stack.cfn.intrinsics import Resolver, Unresolvable, condition_references, references
from local.stack.cfn.model import DATA_TYPES, ApiRoute, EventSourceMapping, FunctionSpec, ScheduleSpec, StackModel
from local.stack.cfn.resources import CreatedResources, create_data_resources
from local.stack.cfn.template import ACCOUNT_ID, REGION, TemplateError, load_template, pseudo_parameters, translate

__all__ = [
    "ACCOUNT_ID",
    "DATA_TYPES",
    "REGION",
    "ApiRoute",
    "CreatedResources",
    "EventSourceMapping",
    "FunctionSpec",
    "Resolver",
    "ScheduleSpec",
    "StackModel",
    "TemplateError",
    "Unresolvable",
    "condition_references",
    "create_data_resources",
    "load_template",
    "pseudo_parameters",
    "references",
    "translate",
]
