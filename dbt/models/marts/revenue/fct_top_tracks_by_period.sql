-- Tracks ranked by revenue within each reporting month, organisation and currency: the month's
-- share of revenue, the rank and revenue the month before (movement), and the store that
-- brought the track most revenue that month. fct_top_tracks ranks over all months.
with by_store as (
    select org_id, reporting_period, {{ month_index('reporting_period') }} as month_index,
        track_id, currency, service,
        cast(sum(quantity) as bigint) as quantity,
        cast(sum(amount) as decimal(38, 12)) as revenue
    from {{ ref('int_revenue_lines_monthly') }}
    where track_id is not null
    group by all
),
per_track as (
    select org_id, reporting_period, month_index, track_id, currency,
        cast(sum(quantity) as bigint) as quantity,
        cast(sum(revenue) as decimal(38, 12)) as revenue,
        first(service order by revenue desc, service) as top_service
    from by_store
    group by all
),
ranked as (
    select *,
        rank() over (
            partition by org_id, reporting_period, currency order by revenue desc
        ) as rank_in_period,
        sum(revenue) over (partition by org_id, reporting_period, currency) as period_revenue
    from per_track
)
select
    m.org_id || ':' || m.reporting_period || ':' || m.track_id || ':' || m.currency
        as top_track_period_key,
    m.org_id, m.reporting_period, m.track_id, t.title as track_title, t.artist_name,
    t.release_id, m.currency, m.quantity, m.revenue,
    case when m.period_revenue <> 0
        then cast(m.revenue / m.period_revenue as decimal(18, 6)) end as share_of_period,
    m.top_service,
    m.rank_in_period,
    p.rank_in_period as rank_previous_period,
    p.revenue as revenue_previous_period
from ranked as m
left join ranked as p
    on p.org_id = m.org_id and p.track_id = m.track_id and p.currency = m.currency
    and p.month_index = m.month_index - 1
left join {{ ref('dim_tracks') }} as t on t.track_id = m.track_id
