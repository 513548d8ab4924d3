-- One row per line refused by ingestion's row checks: renames and casts only.
select
    cast(org_id as bigint) as org_id,
    cast(file_id as bigint) as file_id,
    cast(member as varchar) as member,
    cast(line_no as bigint) as line_no,
    cast(source as varchar) as source,
    cast(reporting_period as varchar) as reporting_period,
    cast(territory as varchar) as territory,
    cast(isrc as varchar) as isrc,
    cast(usage_type as varchar) as usage_type,
    cast(quantity as bigint) as quantity,
    cast(amount as decimal(38, 12)) as reported_amount,
    cast(currency as varchar) as reported_currency,
    cast(reasons as varchar) as reasons
from {{ read_source('lake', 'rejected_lines') }} as l
-- only the parts of committed files count (an ingestion killed before its commit leaves parts
-- that no reader takes: pipelines/lake.py committed_parts)
where exists (
    select 1 from {{ read_source('reference', 'committed_files') }} as c
    where c.org_id = l.org_id and c.file_id = l.file_id
)
