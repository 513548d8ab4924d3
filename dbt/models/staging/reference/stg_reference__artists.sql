-- Artists. Renames and casts only.
select
    cast(artist_id as bigint) as artist_id,
    cast(org_id as bigint) as org_id,
    cast(name as varchar) as name,
    cast(kind as varchar) as kind,
    cast(country as varchar) as country
from {{ read_source('reference', 'artists') }}
