-- The ingestion ledger. Renames and casts only.
select
    cast(file_id as bigint) as file_id,
    cast(org_id as bigint) as org_id,
    cast(original_name as varchar) as original_name,
    cast(format as varchar) as format,
    cast(status as varchar) as status,
    cast(reporting_period as varchar) as reporting_period,
    cast(lines_read as bigint) as lines_read,
    cast(lines_accepted as bigint) as lines_accepted,
    cast(lines_rejected as bigint) as lines_rejected,
    cast(lines_matched as bigint) as lines_matched,
    cast(lines_suspense as bigint) as lines_suspense,
    cast(quarantine_code as varchar) as quarantine_code,
    cast(received_at as timestamptz) as received_at
from {{ read_source('reference', 'ingest_files') }}
