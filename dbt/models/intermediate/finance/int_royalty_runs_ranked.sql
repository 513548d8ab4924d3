-- Every run version with `is_current`: per organisation and period only the latest approved or
-- locked version counts; calculated and superseded versions never do (no double counting).
with runs as (
    select * from {{ ref('stg_reference__royalty_runs') }}
),
ranked as (
    select
        *,
        status in ('approved', 'locked') as is_final,
        row_number() over (
            partition by org_id, period, status in ('approved', 'locked')
            order by version desc
        ) as final_rank
    from runs
)
select
    run_id, org_id, period, period_start, period_end, version, status, currency,
    supersedes_id, created_at, locked_at,
    is_final and final_rank = 1 as is_current
from ranked
