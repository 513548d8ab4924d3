-- Per run version, contract, dimension and key: allocated earnings. Renames and casts only.
select
    cast(regexp_extract(filename, '/org=(\d+)/', 1) as bigint) as org_id,
    regexp_extract(filename, '/period=([^/]+)/', 1) as period,
    cast(regexp_extract(filename, '/v(\d+)/outputs/', 1) as bigint) as version,
    cast(contract_id as bigint) as contract_id,
    cast(payee_id as bigint) as payee_id,
    cast(currency as varchar) as currency,
    cast(dimension as varchar) as dimension,
    cast(key as varchar) as dimension_key,
    cast(amount as decimal(38, 2)) as amount,
    cast(exact as decimal(38, 12)) as exact_amount,
    cast(quantity as bigint) as quantity
from {{ read_source('runs', 'breakdown', filename=true) }}
