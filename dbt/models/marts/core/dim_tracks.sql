select
    t.track_id, t.org_id, t.release_id, t.isrc, t.title, t.version, t.artist_id,
    a.name as artist_name, r.title as release_title, r.upc, t.duration_seconds, t.explicit,
    t.disc_number, t.track_number
from {{ ref('stg_reference__tracks') }} as t
left join {{ ref('stg_reference__artists') }} as a on a.artist_id = t.artist_id
left join {{ ref('stg_reference__releases') }} as r on r.release_id = t.release_id
