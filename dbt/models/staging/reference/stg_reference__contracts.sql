-- Contracts. Renames and casts only.
select
    cast(contract_id as bigint) as contract_id,
    cast(org_id as bigint) as org_id,
    cast(payee_id as bigint) as payee_id,
    cast(reference as varchar) as reference,
    cast(name as varchar) as name,
    cast(basis as varchar) as basis,
    cast(currency as varchar) as currency,
    cast(cross_collateral_group as varchar) as cross_collateral_group,
    cast(reserve_rate as decimal(38,12)) as reserve_rate,
    cast(minimum_payment as decimal(38,2)) as minimum_payment,
    cast(statement_frequency as varchar) as statement_frequency,
    cast(start_date as date) as start_date,
    cast(end_date as date) as end_date
from {{ read_source('reference', 'contracts') }}
