-- Royalties of the current run of each period, per contract and release, in the contract's
-- currency (the run's breakdown by release, allocated to the cent: adds up to the ledger).
select
    b.org_id || ':' || r.run_id || ':' || b.contract_id || ':' || b.dimension_key as royalty_line_key,
    b.org_id, r.run_id, b.period, r.status as run_status, b.contract_id, b.payee_id,
    cast(b.dimension_key as bigint) as release_id,
    b.currency, b.quantity, b.amount, b.exact_amount
from {{ ref('stg_runs__breakdown') }} as b
join {{ ref('int_royalty_runs_ranked') }} as r
    on r.org_id = b.org_id and r.period = b.period and r.version = b.version
where r.is_current and b.dimension = 'release_id'
