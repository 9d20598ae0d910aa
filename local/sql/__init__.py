"""SQL on the exported data: the template's Glue tables (:mod:`.glue`), DuckDB views derived from
them (:mod:`.duck`) and the operator's first queries with their ground truth (:mod:`.queries`)."""
