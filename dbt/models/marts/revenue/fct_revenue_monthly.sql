-- Revenue per organisation, month, source, store (service), territory and currency, with the
-- previous month's figure for the same slice (growth).
with monthly as (
    select
        org_id, reporting_period, {{ month_index('reporting_period') }} as month_index,
        source, service, coalesce(territory, '??') as territory, currency,
        cast(sum(lines) as bigint) as lines, cast(sum(quantity) as bigint) as quantity,
        cast(sum(amount) as decimal(38, 12)) as revenue,
        cast(coalesce(sum(amount) filter (where in_suspense), 0) as decimal(38, 12)) as suspense_revenue
    from {{ ref('int_revenue_lines_monthly') }}
    group by all
)
select
    m.org_id || ':' || m.reporting_period || ':' || m.source || ':' || m.service || ':'
        || m.territory || ':' || m.currency as revenue_monthly_key,
    m.org_id, m.reporting_period, m.source, m.service, m.territory, m.currency,
    m.lines, m.quantity, m.revenue, m.suspense_revenue,
    p.revenue as revenue_previous_month,
    case when p.revenue is not null and p.revenue <> 0
        then cast((m.revenue - p.revenue) / p.revenue as decimal(18, 6)) end as growth_vs_previous_month
from monthly as m
left join monthly as p
    on p.org_id = m.org_id and p.source = m.source and p.service = m.service
    and p.territory = m.territory and p.currency = m.currency
    and p.month_index = m.month_index - 1
