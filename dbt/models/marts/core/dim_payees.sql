select
    p.payee_id, p.org_id, p.name, p.artist_id, p.country, p.statement_currency,
    p.withholding_rate,
    (select count(*) from {{ ref('stg_reference__contracts') }} as c where c.payee_id = p.payee_id) as contracts
from {{ ref('stg_reference__payees') }} as p
