{#- Money: DECIMAL only; cents rounded half-even, as the royalty engine rounds (money.cents). -#}
{% macro exact(expr) -%} cast({{ expr }} as decimal(38, 12)) {%- endmacro %}
{% macro cents(expr) -%} cast(round_even(cast({{ expr }} as decimal(38, 12)), 2) as decimal(38, 2)) {%- endmacro %}
{% macro month_index(period_col) -%}
  (cast(substr({{ period_col }}, 1, 4) as integer) * 12 + cast(substr({{ period_col }}, 6, 2) as integer) - 1)
{%- endmacro %}
