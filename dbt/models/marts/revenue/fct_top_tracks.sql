-- Tracks ranked by revenue (all months in the lake) within their organisation and currency.
with per_track as (
    select org_id, track_id, currency, sum(quantity) as quantity,
        cast(sum(amount) as decimal(38, 12)) as revenue,
        min(reporting_period) as first_period, max(reporting_period) as last_period
    from {{ ref('int_revenue_lines_monthly') }}
    where track_id is not null
    group by all
)
select
    p.org_id || ':' || p.track_id || ':' || p.currency as top_track_key,
    p.org_id, p.track_id, t.title as track_title, t.artist_name, t.release_id, p.currency,
    p.quantity, p.revenue, p.first_period, p.last_period,
    rank() over (partition by p.org_id, p.currency order by p.revenue desc) as rank_in_org
from per_track as p
left join {{ ref('dim_tracks') }} as t on t.track_id = p.track_id
