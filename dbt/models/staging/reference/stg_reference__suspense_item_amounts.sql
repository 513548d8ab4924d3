-- Suspense items' amounts per currency. Renames and casts only.
select
    cast(suspense_item_id as bigint) as suspense_item_id,
    cast(org_id as bigint) as org_id,
    cast(currency as varchar) as currency,
    cast(amount as decimal(38,12)) as amount
from {{ read_source('reference', 'suspense_item_amounts') }}
