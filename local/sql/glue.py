"""The template's Glue tables (template.yaml, "SQL (Athena)") read back as data: for the local SQL
engine (:mod:`local.sql.duck` derives its views from them) and for the tests that hold them to the
code that writes the files (:func:`column_problems`).

Only what the template says is used; nothing here names a column of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.stack.cfn import Resolver, load_template, pseudo_parameters

__all__ = [
    "GlueColumn",
    "GlueTable",
    "GlueTemplateError",
    "column_problems",
    "csv_column_names",
    "glue_tables",
    "json_fields",
    "load_glue_tables",
    "location_variables",
]

GLUE_TABLE = "AWS::Glue::Table"
ROW_PREFIX = "row_"
"""A CSV column whose name a partition key also has is called ``row_{name}`` in Glue (Hive refuses a
table whose data and partition columns share a name)."""
_TEMPLATE_VAR = re.compile(r"\$\{([^}]+)\}")
_PATH_EXTRACTOR = re.compile(r"\A\((\w+)\)\Z")


class GlueTemplateError(ValueError):
    """The template's Glue tables are not what the local SQL engine can read (says what and why)."""


@dataclass(frozen=True)
class GlueColumn:
    name: str
    type: str


@dataclass(frozen=True)
class GlueTable:
    """One ``AWS::Glue::Table`` with its intrinsics resolved for one bucket."""

    logical_id: str
    name: str
    columns: tuple[GlueColumn, ...]
    partition_keys: tuple[GlueColumn, ...]
    serde: str
    serde_parameters: Mapping[str, str]
    parameters: Mapping[str, str]
    location: str  # s3://bucket/prefix/
    location_template: str | None  # storage.location.template, ``${key}`` kept

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def prefix(self) -> str:
        """The table's key prefix in its bucket (``cdr/``)."""
        _bucket, _, prefix = self.location.removeprefix("s3://").partition("/")
        return prefix


def csv_column_names(documented: Sequence[str], partition_keys: Iterable[str]) -> list[str]:
    """The Glue name of each documented CSV column, in file order: its own name, or ``row_{name}``
    where a partition key has that name."""
    keys = set(partition_keys)
    return [f"{ROW_PREFIX}{name}" if name in keys else name for name in documented]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise GlueTemplateError(f"{where} is {value!r}, not a string once resolved")
    return value


def _columns(items: Any, where: str) -> tuple[GlueColumn, ...]:
    if not isinstance(items, list):
        raise GlueTemplateError(f"{where} is not a list")
    return tuple(
        GlueColumn(_text(c.get("Name"), f"{where} name"), _text(c.get("Type"), f"{where} type")) for c in items
    )


def glue_tables(template: Mapping[str, Any], bucket: str, stack_name: str = "aicc-export") -> dict[str, GlueTable]:
    """Every Glue table of ``template`` (as :func:`local.stack.cfn.load_template` returns it), by
    table name, with ``ExportBucket`` resolved to ``bucket``."""
    resolver = Resolver(
        parameters=pseudo_parameters(stack_name),
        conditions=template.get("Conditions") or {},
        physical={"ExportBucket": bucket, "ExportDatabase": stack_name.replace("-", "_")},
    )
    tables: dict[str, GlueTable] = {}
    for lid, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != GLUE_TABLE:
            continue
        table = resolver.resolve((resource.get("Properties") or {}).get("TableInput") or {})
        storage = table.get("StorageDescriptor") or {}
        serde = storage.get("SerdeInfo") or {}
        params = {k: _text(v, f"{lid} parameter {k}") for k, v in (table.get("Parameters") or {}).items()}
        name = _text(table.get("Name"), f"{lid} TableInput.Name")
        tables[name] = GlueTable(
            logical_id=lid,
            name=name,
            columns=_columns(storage.get("Columns"), f"{lid} StorageDescriptor.Columns"),
            partition_keys=_columns(table.get("PartitionKeys") or [], f"{lid} PartitionKeys"),
            serde=_text(serde.get("SerializationLibrary"), f"{lid} SerializationLibrary"),
            serde_parameters={
                k: _text(v, f"{lid} SerDe parameter {k}") for k, v in (serde.get("Parameters") or {}).items()
            },
            parameters=params,
            location=_text(storage.get("Location"), f"{lid} StorageDescriptor.Location"),
            location_template=params.get("storage.location.template"),
        )
    return tables


def load_glue_tables(template_path: Path, bucket: str) -> dict[str, GlueTable]:
    return glue_tables(load_template(template_path), bucket)


def location_variables(table: GlueTable) -> list[str]:
    """The ``${key}`` names of the table's storage.location.template, in order."""
    return _TEMPLATE_VAR.findall(table.location_template or "")


def json_fields(table: GlueTable) -> dict[str, str]:
    """Column -> the top-level JSON field it reads: the field its Ion path extractor names
    (``ion.response_id.path_extractor: (responseId)``), else the field of its own name."""
    fields: dict[str, str] = {}
    for column in table.columns:
        extractor = table.serde_parameters.get(f"ion.{column.name}.path_extractor")
        if extractor is None:
            fields[column.name] = column.name
            continue
        match = _PATH_EXTRACTOR.match(extractor)
        if not match:
            raise GlueTemplateError(
                f"Glue table {table.name}: path extractor {extractor!r} of {column.name} "
                "is not a top-level field: (name)"
            )
        fields[column.name] = match.group(1)
    return fields


def column_problems(
    tables: Mapping[str, GlueTable],
    csv_columns: Mapping[str, Sequence[str]],
    counters: Sequence[str],
) -> list[str]:
    """Where the Glue tables and the lists the exporter writes by disagree (empty: none).

    ``csv_columns``: table name -> the documented columns the exported CSV files start with
    (``ccfs.columns``); ``counters``: the manifest's ``counts`` fields (``exporter.jobs.manifest``).
    """
    problems: list[str] = []
    for name, documented in csv_columns.items():
        table = tables.get(name)
        if table is None:
            problems.append(f"no Glue table {name!r} in the template")
            continue
        keys = [k.name for k in table.partition_keys]
        expected = csv_column_names(documented, keys)
        if table.column_names != expected:
            missing = [c for c in expected if c not in table.column_names]
            extra = [c for c in table.column_names if c not in expected]
            problems.append(
                f"Glue table {name}: columns differ from the exported CSV's (missing {missing}, not written {extra}, "
                f"or out of order); expected {expected}"
            )
        typed = [c.name for c in table.columns if c.type != "string"]
        if typed:
            problems.append(f"Glue table {name}: {typed} are not string (the exporter writes values as received)")
        if keys != ["account_id", "call_date"]:
            problems.append(f"Glue table {name}: partition keys are {keys}, not account_id, call_date (the S3 layout)")
        if location_variables(table) != keys:
            problems.append(f"Glue table {name}: storage.location.template does not use exactly {keys}")
    manifests = tables.get("manifests")
    counts = next((c for c in manifests.columns if c.name == "counts"), None) if manifests else None
    if counts is None:
        problems.append("no Glue table 'manifests' with a counts column in the template")
    else:
        fields = [f.partition(":")[0] for f in re.findall(r"\w+:\w+", counts.type)]
        if fields != list(counters):
            problems.append(f"Glue table manifests: counts fields {fields} differ from the manifest's {list(counters)}")
    return problems
