-- One row per organisation and report source (format), from the ingestion ledger and the lake.
with files as (
    select org_id, format as source, count(*) as files,
        count(*) filter (where status = 'quarantined') as files_quarantined
    from {{ ref('stg_reference__ingest_files') }}
    where format is not null
    group by all
),
lines as (
    select org_id, source, min(reporting_period) as first_period,
        max(reporting_period) as last_period, count(*) as lines,
        string_agg(distinct service, ', ' order by service) as services
    from {{ ref('stg_lake__revenue_lines') }}
    group by all
)
select
    coalesce(l.org_id, f.org_id) || ':' || coalesce(l.source, f.source) as source_key,
    coalesce(l.org_id, f.org_id) as org_id,
    coalesce(l.source, f.source) as source,
    l.services, l.first_period, l.last_period,
    coalesce(l.lines, 0) as lines,
    coalesce(f.files, 0) as files,
    coalesce(f.files_quarantined, 0) as files_quarantined
from lines as l
full outer join files as f on f.org_id = l.org_id and f.source = l.source
