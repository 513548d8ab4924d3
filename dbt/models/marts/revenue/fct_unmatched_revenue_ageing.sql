-- Unmatched (suspense) revenue by source and age: months from the reporting period to the
-- organisation's latest reporting period in the lake (or the `as_of_period` var), bucketed by
-- the `ageing_buckets` var (upper bounds in months, exclusive).
{%- set buckets = var('ageing_buckets') %}
with suspense as (
    select * from {{ ref('int_revenue_lines_monthly') }} where in_suspense
),
as_of as (
    select org_id,
        {% if var('as_of_period', none) %}'{{ var("as_of_period") }}'{% else %}max(reporting_period){% endif %} as as_of_period
    from {{ ref('int_revenue_lines_monthly') }}
    group by org_id
),
aged as (
    select s.*, a.as_of_period,
        {{ month_index('a.as_of_period') }} - {{ month_index('s.reporting_period') }} as age_months
    from suspense as s join as_of as a using (org_id)
),
bucketed as (
    select *,
        case
        {%- for b in buckets %}
            when age_months < {{ b }} then '{{ "0" if loop.first else buckets[loop.index0 - 1] }}-{{ b - 1 }}'
        {%- endfor %}
            else '{{ buckets[-1] }}+'
        end as age_bucket,
        case
        {%- for b in buckets %}
            when age_months < {{ b }} then {{ loop.index }}
        {%- endfor %}
            else {{ buckets | length + 1 }}
        end as age_bucket_order
    from aged
)
select
    org_id || ':' || source || ':' || currency || ':' || age_bucket as ageing_key,
    org_id, source, currency, age_bucket, age_bucket_order, min(as_of_period) as as_of_period,
    min(reporting_period) as oldest_period, cast(sum(lines) as bigint) as lines, cast(sum(quantity) as bigint) as quantity,
    cast(sum(amount) as decimal(38, 12)) as amount
from bucketed
group by all
