-- ISO 3166-1 territories (a shared reference, not tenant data), plus any code the lake holds
-- that is not in the list (named 'unknown').
with iso as (
    select cast(territory as varchar) as territory, cast(territory_name as varchar) as territory_name,
        cast(alpha3 as varchar) as alpha3
    from {{ ref('iso_territories') }}
),
seen as (
    select distinct territory from {{ ref('stg_lake__revenue_lines') }} where territory is not null
)
select territory, territory_name, alpha3, true as is_iso from iso
union all
select s.territory, 'unknown', null, false
from seen as s anti join iso as i on i.territory = s.territory
