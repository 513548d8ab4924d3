-- Reported vs accounted, per ingested file and currency: what the file reported (its declared
-- total, else the sum of its lines) against what the lake holds (accepted) plus what was
-- rejected.
with lake as (
    select file_id, reported_currency as currency, count(*) as lake_lines,
        cast(sum(reported_amount) as decimal(38, 12)) as lake_amount
    from {{ ref('stg_lake__revenue_lines') }} group by all
),
rejected as (
    select file_id, reported_currency as currency, count(*) as rejected_lines,
        cast(sum(reported_amount) as decimal(38, 12)) as rejected_amount
    from {{ ref('stg_lake__rejected_lines') }} group by all
)
select
    f.org_id || ':' || f.file_id || ':' || t.currency as file_reconciliation_key,
    f.org_id, f.file_id, f.original_name, f.format as source, f.reporting_period, t.currency,
    t.declared_amount,
    cast(coalesce(t.declared_amount, t.read_amount) as decimal(38, 12)) as reported_amount,
    t.accepted_amount as ingested_accepted_amount,
    cast(coalesce(l.lake_amount, 0) as decimal(38, 12)) as lake_amount,
    cast(coalesce(r.rejected_amount, 0) as decimal(38, 12)) as rejected_amount,
    cast(coalesce(t.declared_amount, t.read_amount) - coalesce(l.lake_amount, 0)
        - coalesce(r.rejected_amount, 0) as decimal(38, 12)) as unaccounted_amount,
    coalesce(l.lake_lines, 0) as lake_lines,
    coalesce(r.rejected_lines, 0) as rejected_lines
from {{ ref('stg_reference__ingest_files') }} as f
join {{ ref('stg_reference__ingest_file_totals') }} as t using (file_id)
left join lake as l on l.file_id = f.file_id and l.currency = t.currency
left join rejected as r on r.file_id = f.file_id and r.currency = t.currency
where f.status = 'ingested'
