-- Per file and currency, the ingestion's totals. Renames and casts only.
select
    cast(file_id as bigint) as file_id,
    cast(org_id as bigint) as org_id,
    cast(currency as varchar) as currency,
    cast(read_amount as decimal(38,12)) as read_amount,
    cast(accepted_amount as decimal(38,12)) as accepted_amount,
    cast(rejected_amount as decimal(38,12)) as rejected_amount,
    cast(declared_amount as decimal(38,12)) as declared_amount
from {{ read_source('reference', 'ingest_file_totals') }}
