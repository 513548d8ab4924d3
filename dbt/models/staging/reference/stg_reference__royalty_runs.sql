-- Royalty runs and their statuses. Renames and casts only.
select
    cast(run_id as bigint) as run_id,
    cast(org_id as bigint) as org_id,
    cast(period as varchar) as period,
    cast(period_start as date) as period_start,
    cast(period_end as date) as period_end,
    cast(version as bigint) as version,
    cast(status as varchar) as status,
    cast(currency as varchar) as currency,
    cast(supersedes_id as bigint) as supersedes_id,
    cast(created_at as timestamptz) as created_at,
    cast(locked_at as timestamptz) as locked_at
from {{ read_source('reference', 'royalty_runs') }}
