-- Tracks. Renames and casts only.
select
    cast(track_id as bigint) as track_id,
    cast(org_id as bigint) as org_id,
    cast(release_id as bigint) as release_id,
    cast(isrc as varchar) as isrc,
    cast(title as varchar) as title,
    cast(version as varchar) as version,
    cast(artist_id as bigint) as artist_id,
    cast(duration_seconds as bigint) as duration_seconds,
    cast(explicit as boolean) as explicit,
    cast(disc_number as bigint) as disc_number,
    cast(track_number as bigint) as track_number
from {{ read_source('reference', 'tracks') }}
