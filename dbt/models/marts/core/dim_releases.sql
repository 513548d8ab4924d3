select
    r.release_id, r.org_id, r.upc, r.title, r.release_type, r.label_name, r.artist_id,
    a.name as artist_name, r.original_release_date, r.genre,
    (select count(*) from {{ ref('stg_reference__tracks') }} as t where t.release_id = r.release_id) as tracks
from {{ ref('stg_reference__releases') }} as r
left join {{ ref('stg_reference__artists') }} as a on a.artist_id = r.artist_id
