-- Revenue lines aggregated per organisation, month, source, store (service), territory, usage
-- type and track (track null = suspense): the grain every revenue mart starts from.
select
    org_id, reporting_period, source, {{ store('service') }} as service, territory, usage_type,
    track_id, release_id, currency,
    match_method is null as in_suspense,
    count(*) as lines,
    cast(sum(quantity) as bigint) as quantity,
    sum(amount) as amount
from {{ ref('stg_lake__revenue_lines') }}
group by all
