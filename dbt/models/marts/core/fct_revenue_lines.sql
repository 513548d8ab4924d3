select
    l.revenue_line_key, l.org_id, l.file_id, l.member, l.line_no, l.source, l.service, l.reporting_period,
    l.usage_start, l.usage_end, l.territory, l.usage_type, l.commercial_model,
    l.track_id, l.release_id, l.isrc, l.upc, l.reported_title, l.reported_artist,
    l.match_method, l.match_method is null as in_suspense, l.suspense_reason,
    l.quantity, l.reported_amount, l.reported_currency, l.fx_rate, l.amount, l.currency
from {{ ref('stg_lake__revenue_lines') }} as l
