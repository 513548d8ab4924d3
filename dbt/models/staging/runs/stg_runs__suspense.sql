-- Per run version: the unmatched revenue it left in suspense. Renames and casts only.
select
    cast(regexp_extract(filename, '/org=(\d+)/', 1) as bigint) as org_id,
    regexp_extract(filename, '/period=([^/]+)/', 1) as period,
    cast(regexp_extract(filename, '/v(\d+)/outputs/', 1) as bigint) as version,
    cast(reporting_period as varchar) as reporting_period,
    cast(source as varchar) as source,
    cast(currency as varchar) as currency,
    cast(suspense_reason as varchar) as suspense_reason,
    cast(amount as decimal(38, 12)) as amount,
    cast(quantity as bigint) as quantity,
    cast(lines as bigint) as lines
from {{ read_source('runs', 'suspense', filename=true) }}
