-- Releases. Renames and casts only.
select
    cast(release_id as bigint) as release_id,
    cast(org_id as bigint) as org_id,
    cast(upc as varchar) as upc,
    cast(title as varchar) as title,
    cast(release_type as varchar) as release_type,
    cast(label_name as varchar) as label_name,
    cast(artist_id as bigint) as artist_id,
    cast(original_release_date as date) as original_release_date,
    cast(genre as varchar) as genre
from {{ read_source('reference', 'releases') }}
