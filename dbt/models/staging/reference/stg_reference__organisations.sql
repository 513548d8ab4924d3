-- Organisations (tenants). Renames and casts only.
select
    cast(org_id as bigint) as org_id,
    cast(slug as varchar) as slug,
    cast(name as varchar) as name,
    cast(default_currency as varchar) as default_currency,
    cast(created_at as timestamptz) as created_at
from {{ read_source('reference', 'organisations') }}
