{#- The store (DSP or service: Spotify, Apple, YouTube, ...) as the report names it; a report
    that names none is `(not reported)`, so every line has a store to group by. -#}
{% macro store(service_col) -%}
  coalesce(nullif(trim({{ service_col }}), ''), '(not reported)')
{%- endmacro %}
