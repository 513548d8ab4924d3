-- One row per organisation and store (the DSP or service that sold the music: Spotify, Apple,
-- YouTube, ...), as the reports name it, with the report formats that carried it.
select
    org_id || ':' || service as store_key,
    org_id, service,
    string_agg(distinct source, ', ' order by source) as sources,
    min(reporting_period) as first_period,
    max(reporting_period) as last_period,
    cast(sum(lines) as bigint) as lines,
    cast(sum(quantity) as bigint) as quantity
from {{ ref('int_revenue_lines_monthly') }}
group by org_id, service
