-- Each run's reconciled totals, one row per currency and measure. Renames and casts only.
select
    cast(run_id as bigint) as run_id,
    cast(org_id as bigint) as org_id,
    cast(currency as varchar) as currency,
    cast(measure as varchar) as measure,
    cast(amount as decimal(38,2)) as amount
from {{ read_source('reference', 'royalty_run_totals') }}
