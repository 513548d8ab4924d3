-- The ledger rows of the current run of each period (see int_royalty_runs_ranked).
select r.run_id, r.status as run_status, l.*
from {{ ref('stg_runs__ledger') }} as l
join {{ ref('int_royalty_runs_ranked') }} as r
    on r.org_id = l.org_id and r.period = l.period and r.version = l.version
where r.is_current
