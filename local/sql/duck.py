"""DuckDB over the exported objects, with views derived from the template's Glue tables.

Every view is made from a :class:`~local.sql.glue.GlueTable` alone: its columns and types, its
SerDe and SerDe parameters, its header count and its location (template). There is no second
column list here. A table whose SerDe or layout this module cannot reproduce exactly is refused
with :class:`~local.sql.glue.GlueTemplateError`, never read approximately.

The objects are read from a local copy (:func:`download`): DuckDB's httpfs extension would have to
be fetched from the network, and the local stack runs offline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from local.sql.glue import GlueTable, GlueTemplateError, json_fields, location_variables

__all__ = ["connect", "download", "duck_type", "view_sql"]

CSV_SERDE = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
ION_SERDE = "com.amazon.ionhiveserde.IonHiveSerDe"
_SCALARS = {
    "string": "VARCHAR",
    "bigint": "BIGINT",
    "int": "INTEGER",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "boolean": "BOOLEAN",
    "double": "DOUBLE",
    "float": "FLOAT",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duck_type(hive: str) -> str:
    """A Hive/Glue type (``array<struct<key:string,rows:bigint>>``) as a DuckDB type."""
    text = hive.replace(" ", "")
    parsed, rest = _parse_type(text, hive)
    if rest:
        raise GlueTemplateError(f"Glue type {hive!r}: unexpected {rest!r} after the type")
    return parsed


def _parse_type(text: str, whole: str) -> tuple[str, str]:
    lower = text.lower()
    if lower.startswith("array<"):
        inner, rest = _parse_type(text[6:], whole)
        if not rest.startswith(">"):
            raise GlueTemplateError(f"Glue type {whole!r}: array<...> is not closed")
        return f"{inner}[]", rest[1:]
    if lower.startswith("struct<"):
        rest = text[7:]
        fields = []
        while True:
            match = re.match(r"(\w+):", rest)
            if not match:
                raise GlueTemplateError(f"Glue type {whole!r}: expected name:type in struct<...> at {rest[:20]!r}")
            field_type, rest = _parse_type(rest[match.end() :], whole)
            fields.append(f"{_quote(match.group(1))} {field_type}")
            if rest.startswith(","):
                rest = rest[1:]
                continue
            if rest.startswith(">"):
                return f"STRUCT({', '.join(fields)})", rest[1:]
            raise GlueTemplateError(f"Glue type {whole!r}: struct<...> is not closed")
    match = re.match(r"[a-z]+", lower)
    if not match or match.group(0) not in _SCALARS:
        raise GlueTemplateError(f"Glue type {whole!r}: {text[:20]!r} is not a type the local SQL engine maps")
    return _SCALARS[match.group(0)], text[match.end() :]


def _char(table: GlueTable, key: str, default: str) -> str:
    value = table.serde_parameters.get(key, default)
    if len(value) != 1:
        raise GlueTemplateError(f"Glue table {table.name}: SerDe parameter {key} must be one character, not {value!r}")
    return value


def _files(table: GlueTable, root: Path) -> tuple[str, bool]:
    """The glob of the table's objects under ``root`` (the bucket's local copy) and whether any exist.
    A partitioned table's location template must be Hive-style (``key=${key}`` path segments) so
    that the key values come from the path exactly as Athena's projection puts them there."""
    keys = [k.name for k in table.partition_keys]
    if keys:
        template = table.location_template
        if not template:
            raise GlueTemplateError(f"Glue table {table.name}: partitioned but without storage.location.template")
        if location_variables(table) != keys:
            raise GlueTemplateError(
                f"Glue table {table.name}: storage.location.template names {location_variables(table)}, "
                f"the partition keys are {keys}"
            )
        relative = template.removeprefix("s3://").partition("/")[2]
        for key in keys:
            if f"/{key}=${{{key}}}/" not in f"/{relative}":
                raise GlueTemplateError(
                    f"Glue table {table.name}: storage.location.template is not Hive-style ({key}=${{{key}}}/ expected)"
                )
            relative = relative.replace(f"${{{key}}}", "*")
        pattern = relative + "*"
    else:
        pattern = table.prefix() + "*"
    found = any(root.glob(pattern))
    return str(root / pattern), found


def _empty(table: GlueTable) -> str:
    """No object yet: the table's columns and no row (read_csv/read_json refuse an empty glob)."""
    columns = [*table.columns, *table.partition_keys]
    return f"SELECT {', '.join(f'CAST(NULL AS {duck_type(c.type)}) AS {_quote(c.name)}' for c in columns)} WHERE false"


def _csv_view(table: GlueTable, root: Path) -> str:
    separator = _char(table, "separatorChar", ",")
    quote = _char(table, "quoteChar", '"')
    escape = _char(table, "escapeChar", "\\")
    if escape not in ("\0", quote):
        # OpenCSVSerde drops an escape character that precedes neither a quote nor itself: DuckDB
        # cannot read that the same way, so the table would not be read as Athena reads it.
        raise GlueTemplateError(
            f"Glue table {table.name}: escapeChar {escape!r} cannot be reproduced locally; "
            "the exported files escape a quote by doubling it (escapeChar NUL = none)"
        )
    header = table.parameters.get("skip.header.line.count", "0")
    if header not in ("0", "1"):
        raise GlueTemplateError(f"Glue table {table.name}: skip.header.line.count {header!r} is not 0 or 1")
    encoding = table.serde_parameters.get("serialization.encoding", "UTF-8").lower().replace("_", "-")
    glob, found = _files(table, root)
    names = table.column_names
    keys = table.partition_keys
    select = [f"CAST({_quote(c.name)} AS {duck_type(c.type)}) AS {_quote(c.name)}" for c in table.columns]
    select += [f"CAST({_quote(k.name)} AS {duck_type(k.type)}) AS {_quote(k.name)}" for k in keys]
    if not found:
        return _empty(table)
    options = [
        f"header = {'true' if header == '1' else 'false'}",
        f"delim = {_literal(separator)}",
        f"quote = {_literal(quote)}",
        f"escape = {_literal(quote)}",
        f"encoding = {_literal(encoding)}",
        "all_varchar = true",
        "nullstr = chr(0)",  # an empty field is '' as OpenCSVSerde reads it (no exported field holds a NUL)
        "null_padding = true",  # Hive gives NULL for a missing trailing column
        f"names = [{', '.join(_literal(n) for n in names)}]",  # by position; extra columns are not selected
    ]
    if keys:
        types = ", ".join(f"{_literal(k.name)}: {_literal(duck_type(k.type))}" for k in keys)
        options += ["hive_partitioning = true", f"hive_types = {{{types}}}"]
    # Built from template.yaml only; every name and literal goes through _quote/_literal.
    return f"SELECT {', '.join(select)} FROM read_csv({_literal(glob)}, {', '.join(options)})"  # noqa: S608


def _json_view(table: GlueTable, root: Path) -> str:
    """Ion SerDe over JSON documents: a column is the field its path extractor names (``(responseId)``),
    else the field of its own name."""
    fields = json_fields(table)
    glob, found = _files(table, root)
    select = [f"{_quote(fields[c.name])} AS {_quote(c.name)}" for c in table.columns]
    if not found:
        return _empty(table)
    columns = ", ".join(f"{_literal(fields[c.name])}: {_literal(duck_type(c.type))}" for c in table.columns)
    source = f"read_json({_literal(glob)}, format = 'auto', columns = {{{columns}}})"
    return f"SELECT {', '.join(select)} FROM {source}"  # noqa: S608 (from template.yaml, quoted)


def view_sql(table: GlueTable, root: Path) -> str:
    """The SELECT that reads ``table``'s objects from ``root`` (a local copy of the bucket)."""
    if table.serde == CSV_SERDE:
        return _csv_view(table, root)
    if table.serde == ION_SERDE:
        return _json_view(table, root)
    raise GlueTemplateError(f"Glue table {table.name}: SerDe {table.serde} is not one the local SQL engine reads")


def connect(tables: Mapping[str, GlueTable], root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per Glue table, reading the bucket copy at ``root``."""
    con = duckdb.connect(":memory:")
    for name, table in tables.items():
        con.execute(f"CREATE VIEW {_quote(name)} AS {view_sql(table, root)}")
    return con


def download(s3: Any, bucket: str, tables: Mapping[str, GlueTable], root: Path) -> int:
    """Copy every object under the tables' prefixes to ``root`` (same keys). Returns the count."""
    count = 0
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in sorted({t.prefix() for t in tables.values()}):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                target = root / obj["Key"]
                if not target.resolve().is_relative_to(root.resolve()):
                    raise GlueTemplateError(f"object key {obj['Key'][:80]!r} would leave the local copy")
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, obj["Key"], str(target))
                count += 1
    return count
