-- Suspense work items. Renames and casts only.
select
    cast(suspense_item_id as bigint) as suspense_item_id,
    cast(org_id as bigint) as org_id,
    cast(kind as varchar) as kind,
    cast(key as varchar) as key,
    cast(reason as varchar) as reason,
    cast(title as varchar) as title,
    cast(artist as varchar) as artist,
    cast(lines as bigint) as lines,
    cast(quantity as bigint) as quantity,
    cast(first_period as varchar) as first_period,
    cast(last_period as varchar) as last_period,
    cast(status as varchar) as status
from {{ read_source('reference', 'suspense_items') }}
