-- Per run version and contract: the balances. The run's coordinates come from its folder
-- (runs/org=<id>/period=<label>/v<n>/): renames and casts only.
select
    cast(regexp_extract(filename, '/org=(\d+)/', 1) as bigint) as org_id,
    regexp_extract(filename, '/period=([^/]+)/', 1) as period,
    cast(regexp_extract(filename, '/v(\d+)/outputs/', 1) as bigint) as version,
    cast(contract_id as bigint) as contract_id,
    cast(payee_id as bigint) as payee_id,
    cast(reference as varchar) as contract_reference,
    cast(pool as varchar) as pool,
    cast(currency as varchar) as currency,
    cast(opening as decimal(38, 2)) as opening,
    cast(earnings as decimal(38, 2)) as earnings,
    cast(advances as decimal(38, 2)) as advances,
    cast(costs as decimal(38, 2)) as costs,
    cast(reserve_held as decimal(38, 2)) as reserve_held,
    cast(reserve_released as decimal(38, 2)) as reserve_released,
    cast(balance as decimal(38, 2)) as balance,
    cast(recouped as decimal(38, 2)) as recouped,
    cast(tax as decimal(38, 2)) as tax,
    cast(payable as decimal(38, 2)) as payable,
    cast(closing as decimal(38, 2)) as closing,
    cast(carried_forward as decimal(38, 2)) as carried_forward,
    cast(reserves_outstanding as decimal(38, 2)) as reserves_outstanding,
    cast(status as varchar) as status
from {{ read_source('runs', 'ledger', filename=true) }}
