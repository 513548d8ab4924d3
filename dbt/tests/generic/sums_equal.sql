{#- Per group, `left` (an expression) equals `right`: a money invariant to the cent. -#}
{% test sums_equal(model, left, right, group_by) %}
select {{ group_by | join(', ') }}, sum({{ left }}) as left_total, sum({{ right }}) as right_total
from {{ model }}
group by {{ group_by | join(', ') }}
having sum({{ left }}) <> sum({{ right }})
{% endtest %}
