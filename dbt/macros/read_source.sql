{#-
  Reading the Parquet sources.

  Each source table declares, in its YAML, `meta.glob` (relative to the data dir) and its
  columns with `data_type`: that is the contract. `read_source(source, table)` returns a FROM
  clause for the files matching the glob, skipping any path with a component starting with
  "." (temporary and staging files). Before any model reads them it checks every file against
  the contract and stops the build with an error naming the file, the column and the types:
  a missing column or a wrong type never becomes a silent NULL or a float. No file at all (a
  new organisation, an empty period) reads as zero typed rows, so every model still builds.
  A column with `meta: {optional: true}` was added after files were written without it: a
  file may lack it (it reads as NULL there), but where present it must have its type.
-#}

{% macro data_dir() -%}
  {{- env_var('TUNEMANTRA_DATA_DIR', '../var') | replace("'", "''") -}}
{%- endmacro %}

{% macro _source_node(source_name, table_name) -%}
  {%- for node in graph.sources.values() -%}
    {%- if node.source_name == source_name and node.name == table_name -%}
      {{- return(node) -}}
    {%- endif -%}
  {%- endfor -%}
  {{- exceptions.raise_compiler_error("no source " ~ source_name ~ "." ~ table_name) -}}
{%- endmacro %}

{% macro _type_family(t) -%}
  {%- set base = t | upper | replace(' ', '') -%}
  {%- set name = base.split('(')[0] -%}
  {%- if name in ('TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'UTINYINT', 'USMALLINT', 'UINTEGER') -%}
    {{- return('INTEGER') -}}
  {%- elif name == 'DECIMAL' -%}
    {{- return(base) -}}
  {%- elif name in ('VARCHAR', 'TEXT', 'STRING') -%}
    {{- return('VARCHAR') -}}
  {%- elif name in ('TIMESTAMP', 'TIMESTAMPWITHTIMEZONE', 'TIMESTAMP_NS', 'TIMESTAMP_MS', 'TIMESTAMP_US') -%}
    {{- return('TIMESTAMP') -}}
  {%- else -%}
    {{- return(name) -}}
  {%- endif -%}
{%- endmacro %}

{% macro read_source(source_name, table_name, filename=false) -%}
  {%- set rel = source(source_name, table_name) -%}
  {%- if not execute -%}
    {{- return('(select 1)') -}}
  {%- endif -%}
  {%- set node = _source_node(source_name, table_name) -%}
  {%- set root = data_dir() -%}
  {%- set pattern = root ~ '/' ~ node.meta['glob'] -%}
  {%- set columns = node.columns.values() | list -%}
  {%- set listing = run_query(
      "select file from glob('" ~ pattern ~ "') "
      ~ "where not regexp_matches(substr(file, " ~ (root | length + 2) ~ "), '(^|/)\\.') order by file"
  ) -%}
  {%- set files = listing.columns[0].values() | list -%}
  {%- if files | length == 0 -%}
    {#- Zero rows, typed as the contract says. -#}
    {%- set cols = [] -%}
    {%- for c in columns -%}
      {%- do cols.append("cast(null as " ~ c.data_type ~ ") as " ~ adapter.quote(c.name)) -%}
    {%- endfor -%}
    {%- if filename -%}{%- do cols.append("cast(null as varchar) as filename") -%}{%- endif -%}
    {{- return("(select " ~ cols | join(", ") ~ " where false)") -}}
  {%- endif -%}
  {%- set file_list = [] -%}
  {%- for f in files -%}{%- do file_list.append("'" ~ (f | replace("'", "''")) ~ "'") -%}{%- endfor -%}
  {%- set file_sql = "[" ~ file_list | join(", ") ~ "]" -%}
  {%- set schema = run_query(
      "select file_name, name, duckdb_type from parquet_schema(" ~ file_sql ~ ") where name <> 'duckdb_schema' and num_children is null"
  ) -%}
  {%- set found = {} -%}
  {%- for row in schema.rows -%}
    {%- do found.update({row[0] ~ '|' ~ row[1]: row[2]}) -%}
  {%- endfor -%}
  {%- set problems = [] -%}
  {%- for f in files -%}
    {%- for c in columns -%}
      {%- set key = f ~ '|' ~ c.name -%}
      {%- if key not in found -%}
        {%- if not c.meta.get('optional') -%}
          {%- do problems.append("missing column " ~ c.name ~ " (" ~ c.data_type ~ ") in " ~ f) -%}
        {%- endif -%}
      {%- elif _type_family(found[key]) != _type_family(c.data_type) -%}
        {%- do problems.append("column " ~ c.name ~ " is " ~ found[key] ~ ", expected " ~ c.data_type ~ " in " ~ f) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- if problems -%}
    {{- exceptions.raise_compiler_error(
        "source " ~ source_name ~ "." ~ table_name ~ " does not match its contract ("
        ~ problems | length ~ " problem(s)): " ~ (problems[:10] | join("; "))) -}}
  {%- endif -%}
  {%- set scan = "read_parquet(" ~ file_sql ~ ", hive_partitioning = false, union_by_name = true"
      ~ (", filename = true" if filename else "") ~ ")" -%}
  {#- An optional column no file has yet: typed NULLs (union_by_name fills the rest). -#}
  {%- set absent = [] -%}
  {%- for c in columns if c.meta.get('optional') -%}
    {%- set ns = namespace(seen=false) -%}
    {%- for f in files if (f ~ '|' ~ c.name) in found -%}{%- set ns.seen = true -%}{%- endfor -%}
    {%- if not ns.seen -%}
      {%- do absent.append("cast(null as " ~ c.data_type ~ ") as " ~ adapter.quote(c.name)) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if absent -%}
    {{- return("(select *, " ~ absent | join(", ") ~ " from " ~ scan ~ ")") -}}
  {%- endif -%}
  {{- return(scan) -}}
{%- endmacro %}
