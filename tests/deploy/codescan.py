"""What the functions' code does with AWS, read from the source (no imports, no AWS calls).

For each Lambda function (``functions/<dir>/app.py`` plus the layer modules it imports, transitively)
this finds, by walking its call graph from the handler module's own functions:

- the AWS API operations it calls (boto3 client methods, boto3's managed transfers, and the
  Powertools utilities that call AWS on its behalf), as IAM actions;
- the environment variables it reads (``os.environ`` / ``os.getenv`` and ``exporter.config._ENV``);
- the metric names it emits (``add_metric(name=...)``, and the name tables fed to it).

The call graph is by name (a call of ``x.mark_ready(...)`` reaches every ``def mark_ready`` of the
function's modules): an over-approximation, which is the safe side for "the policy allows every
call", and still tells the callback (which never queries) from the download function.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared"
FIRST_PARTY = ("exporter", "ccfs")

# boto3 client method -> the IAM actions it needs. Every AWS call the code makes must be listed
# here (test_every_aws_call_is_known fails on an unknown one), so a new call cannot slip past the
# policy check. Managed transfers: upload_file/upload_fileobj use PutObject (and the multipart
# calls, authorised by s3:PutObject) and abort with AbortMultipartUpload; copy reads the source
# (HeadObject/GetObject) and writes the target. HeadObject of a missing key answers 404 only with
# s3:ListBucket (403 without), and the code tells "not there" by the 404.
BOTO3_ACTIONS: dict[str, tuple[str, ...]] = {
    "get_item": ("dynamodb:GetItem",),
    "put_item": ("dynamodb:PutItem",),
    "update_item": ("dynamodb:UpdateItem",),
    "delete_item": ("dynamodb:DeleteItem",),
    "query": ("dynamodb:Query",),
    "scan": ("dynamodb:Scan",),
    "batch_write_item": ("dynamodb:BatchWriteItem",),
    "batch_get_item": ("dynamodb:BatchGetItem",),
    "transact_write_items": (),  # the items' own actions, see TRANSACT_ITEM_ACTIONS
    "send_message": ("sqs:SendMessage",),
    "send_message_batch": ("sqs:SendMessage",),
    "get_object": ("s3:GetObject",),
    "put_object": ("s3:PutObject",),
    "head_object": ("s3:GetObject", "s3:ListBucket"),
    "delete_object": ("s3:DeleteObject",),
    "delete_objects": ("s3:DeleteObject",),
    "upload_file": ("s3:PutObject", "s3:AbortMultipartUpload"),
    "upload_fileobj": ("s3:PutObject", "s3:AbortMultipartUpload"),
    "copy": ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"),
    "get_secret_value": ("secretsmanager:GetSecretValue",),
    "get_parameter": ("ssm:GetParameter",),
}
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# Powertools utilities that call AWS themselves, by the class the code instantiates.
POWERTOOLS_ACTIONS: dict[str, tuple[str, ...]] = {
    "SecretsProvider": ("secretsmanager:GetSecretValue",),
    "SSMProvider": ("ssm:GetParameter",),
    # idempotency records: read, claim (conditional put), complete (update), drop on failure
    "DynamoDBPersistenceLayer": (
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ),
}
# Functions of ours that make every later write of a client carry more (a botocore event handler).
REGISTERED_ACTIONS: dict[str, tuple[str, ...]] = {
    # PutObject/CreateMultipartUpload/CopyObject with ObjectLockMode + ObjectLockRetainUntilDate
    "lock_final_objects": ("s3:PutObjectRetention",),
}
# Calls on boto3 clients that are not AWS operations (client construction, waiters, ...).
_AWS_METHOD = re.compile(r"^(get|put|update|delete|query|scan|batch|transact|send|head|upload|download|copy|list)")


@dataclass
class FunctionCode:
    """What one Lambda function's code does, as found in its source."""

    name: str
    modules: dict[str, Path]
    actions: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    """Every name called on the reachable paths (for questions like "does it call ccfs_client")."""
    env_reads: set[str] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    unknown_aws_calls: set[str] = field(default_factory=set)
    raising_batch_processors: list[str] = field(default_factory=list)
    """Powertools batch processors built without ``raise_on_entire_batch_failure=False``: a batch whose
    every record failed is raised (a function error) instead of reported (``module:line``)."""


def _module_path(module: str) -> Path | None:
    path = LAYER.joinpath(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in FIRST_PARTY}


def module_closure(app: Path) -> dict[str, Path]:
    """``app.py`` and every first-party layer module it imports, transitively (any depth, any scope)."""
    modules = {"app": app}
    todo = list(_imports(_parse(app)))
    while todo:
        name = todo.pop()
        if name in modules:
            continue
        path = _module_path(name)
        if path is None:
            continue
        modules[name] = path
        todo.extend(_imports(_parse(path)))
    return modules


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _env_reads(node: ast.AST) -> set[str]:
    """``os.environ.get("X")``, ``os.environ["X"]``, ``os.getenv("X")`` below ``node``."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and sub.args:
            name = _called_name(sub)
            target = ast.unparse(sub.func)
            reads = (name == "get" and target.endswith("environ.get")) or name == "getenv"
            if reads and (value := _string(sub.args[0])) is not None:
                found.add(value)
        elif (
            isinstance(sub, ast.Subscript)
            and ast.unparse(sub.value).endswith("environ")
            and (value := _string(sub.slice)) is not None
        ):
            found.add(value)
    return found


def _config_env(path: Path) -> set[str]:
    """The keys of ``_ENV`` (environment variable -> Settings field) in exporter/config.py."""
    for node in _parse(path).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_ENV" for t in node.targets):
            assert isinstance(node.value, ast.Dict)
            return {k for k in map(_string, node.value.keys) if k}
    raise AssertionError(f"{path} has no _ENV table")


def _literals(value: ast.AST) -> set[str]:
    """The strings an expression can evaluate to: a literal, or the branches of ``a if c else b``."""
    if isinstance(value, ast.IfExp):
        return _literals(value.body) | _literals(value.orelse)
    return {s} if (s := _string(value)) else set()


def _metric_names(node: ast.AST, tables: dict[str, set[str]]) -> set[str]:
    """Names given to ``add_metric(name=...)`` below ``node``: literals (also ``a if c else b``), a
    local variable assigned such literals, else a name from one of the metric tables
    (``Report.METRICS``, ``OUTCOME_METRICS``), all of whose names then count."""
    assigned: dict[str, set[str]] = {}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assign):
            for target in sub.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, set()).update(_literals(sub.value))
    found: set[str] = set()
    for sub in ast.walk(node):
        if not (isinstance(sub, ast.Call) and _called_name(sub) == "add_metric"):
            continue
        value = next((k.value for k in sub.keywords if k.arg == "name"), sub.args[0] if sub.args else None)
        if value is None:
            continue
        names = _literals(value) or (assigned.get(value.id, set()) if isinstance(value, ast.Name) else set())
        found |= names or {n for table in tables.values() for n in table}
    return found


def _metric_tables(trees: list[ast.Module]) -> dict[str, set[str]]:
    """Module- or class-level assignments named ``*METRICS*``: their PascalCase strings."""
    tables: dict[str, set[str]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and "METRICS" in target.id and node.value is not None:
                        names = {s for s in map(_string, ast.walk(node.value)) if s and re.match(r"^[A-Z]\w+$", s)}
                        tables.setdefault(target.id, set()).update(names)
    return tables


def scan(function_dir: str) -> FunctionCode:
    app = ROOT / "functions" / function_dir / "app.py"
    modules = module_closure(app)
    trees = {name: _parse(path) for name, path in modules.items()}
    defs: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                defs.setdefault(node.name, []).append(node)
    code = FunctionCode(function_dir, modules)
    tables = _metric_tables(list(trees.values()))

    # Roots: the handler module's top-level code and every function it defines (handlers, routes,
    # record handlers), plus every module's top-level statements (they run at import).
    roots: list[ast.AST] = [
        stmt for tree in trees.values() for stmt in tree.body if not isinstance(stmt, ast.FunctionDef | ast.ClassDef)
    ]
    roots += [n for n in trees["app"].body if isinstance(n, ast.FunctionDef)]
    seen: set[int] = set()
    reached: list[ast.AST] = []
    while roots:
        node = roots.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        reached.append(node)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and (called := _called_name(sub)):
                code.calls.add(called)
                roots.extend(defs.get(called, []))
            elif isinstance(sub, ast.Name | ast.Attribute) and isinstance(sub.ctx, ast.Load):
                # a function passed as a value (a hook such as on_unknown_code=count_unknown_code)
                roots.extend(defs.get(sub.id if isinstance(sub, ast.Name) else sub.attr, []))

    item_kinds: set[str] = set()
    for node in reached:
        code.env_reads |= _env_reads(node)
        code.metrics |= _metric_names(node, tables)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Dict):
                item_kinds |= {k for k in map(_string, sub.keys) if k in TRANSACT_ITEM_ACTIONS}
            if not isinstance(sub, ast.Call):
                continue
            called = _called_name(sub)
            if called in POWERTOOLS_ACTIONS:
                code.actions.update(POWERTOOLS_ACTIONS[called])
            if called in REGISTERED_ACTIONS:
                code.actions.update(REGISTERED_ACTIONS[called])
            if not isinstance(sub.func, ast.Attribute) or called is None:
                continue
            receiver = ast.unparse(sub.func.value)
            if not re.search(r"(^|[._])(s3|sqs|ddb|dynamodb|ssm|secretsmanager|client\(.+\))$", receiver):
                continue
            if called in BOTO3_ACTIONS:
                code.actions.update(BOTO3_ACTIONS[called])
                if called == "transact_write_items":
                    code.actions.add("<transact>")
            elif _AWS_METHOD.match(called):
                code.unknown_aws_calls.add(f"{receiver}.{called}")
    for module, tree in trees.items():
        for sub in ast.walk(tree):
            if isinstance(sub, ast.Call) and any(k.arg == "event_type" for k in sub.keywords):
                flag = next((k.value for k in sub.keywords if k.arg == "raise_on_entire_batch_failure"), None)
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    code.raising_batch_processors.append(f"{module}:{sub.lineno}")
    if "<transact>" in code.actions:
        code.actions.discard("<transact>")
        code.actions.update(TRANSACT_ITEM_ACTIONS[k] for k in item_kinds)
    if "exporter.config" in modules and {"get_settings", "from_env"} & code.calls:
        code.env_reads |= _config_env(modules["exporter.config"])
    return code
