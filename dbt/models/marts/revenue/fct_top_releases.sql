-- Releases ranked by revenue (all months in the lake) within their organisation and currency.
with per_release as (
    select org_id, release_id, currency, sum(quantity) as quantity,
        cast(sum(amount) as decimal(38, 12)) as revenue
    from {{ ref('int_revenue_lines_monthly') }}
    where release_id is not null
    group by all
)
select
    p.org_id || ':' || p.release_id || ':' || p.currency as top_release_key,
    p.org_id, p.release_id, r.title as release_title, r.artist_name, p.currency,
    p.quantity, p.revenue,
    rank() over (partition by p.org_id, p.currency order by p.revenue desc) as rank_in_org
from per_release as p
left join {{ ref('dim_releases') }} as r on r.release_id = p.release_id
