-- Payees. Renames and casts only.
select
    cast(payee_id as bigint) as payee_id,
    cast(org_id as bigint) as org_id,
    cast(name as varchar) as name,
    cast(artist_id as bigint) as artist_id,
    cast(country as varchar) as country,
    cast(statement_currency as varchar) as statement_currency,
    cast(withholding_rate as decimal(38,12)) as withholding_rate
from {{ read_source('reference', 'payees') }}
