-- One row per accepted revenue line in the lake: renames and casts only.
select
    cast(org_id as bigint) as org_id,
    cast(file_id as bigint) as file_id,
    cast(member as varchar) as member,
    cast(line_no as bigint) as line_no,
    -- org:file:line, or org:file:member:line for a report inside a zip (its members each
    -- number their lines from 1); the line number is always the last part
    cast(org_id as varchar) || ':' || cast(file_id as varchar)
        || coalesce(':' || cast(member as varchar), '') || ':' || cast(line_no as varchar)
        as revenue_line_key,
    cast(source as varchar) as source,
    cast(reporting_period as varchar) as reporting_period,
    cast(raw_hash as varchar) as raw_hash,
    cast(usage_start as date) as usage_start,
    cast(usage_end as date) as usage_end,
    cast(territory as varchar) as territory,
    cast(isrc as varchar) as isrc,
    cast(upc as varchar) as upc,
    cast(title as varchar) as reported_title,
    cast(artist as varchar) as reported_artist,
    cast(service as varchar) as service,
    cast(usage_type as varchar) as usage_type,
    cast(commercial_model as varchar) as commercial_model,
    cast(quantity as bigint) as quantity,
    cast(amount as decimal(38, 12)) as reported_amount,
    cast(currency as varchar) as reported_currency,
    cast(track_id as bigint) as track_id,
    cast(release_id as bigint) as release_id,
    cast(match_method as varchar) as match_method,
    cast(suspense_reason as varchar) as suspense_reason,
    cast(fx_rate as decimal(38, 12)) as fx_rate,
    cast(converted_currency as varchar) as currency,
    cast(converted_amount as decimal(38, 12)) as amount
from {{ read_source('lake', 'revenue_lines') }} as l
-- only the parts of committed files count (an ingestion killed before its commit leaves parts
-- that no reader takes: pipelines/lake.py committed_parts)
where exists (
    select 1 from {{ read_source('reference', 'committed_files') }} as c
    where c.org_id = l.org_id and c.file_id = l.file_id
)
