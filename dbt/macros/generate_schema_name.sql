{#- A folder's `+schema` is the schema's whole name (`staging`, `intermediate`), not dbt's
    default `<target schema>_<name>`: the marts stay in `main`, where an analyst looks first,
    and the building blocks live apart from them. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
