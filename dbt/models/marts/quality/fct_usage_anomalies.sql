-- Suspicious usage, one row per flag (rules and thresholds: fct_usage_anomalies.yml, dbt vars).
{%- set n = var('anomaly_baseline_months') %}
with streams as (
    select org_id, track_id, reporting_period, {{ month_index('reporting_period') }} as month_index,
        coalesce(territory, '??') as territory, sum(quantity) as streams
    from {{ ref('int_revenue_lines_monthly') }}
    where usage_type = 'stream' and track_id is not null
    group by all
),
per_track as (
    select org_id, track_id, reporting_period, month_index, sum(streams) as streams
    from streams group by all
),
track_baseline as (
    select *,
        avg(streams) over w as baseline,
        count(*) over w as baseline_months,
        sum(streams) over w as baseline_total
    from per_track
    window w as (partition by org_id, track_id order by month_index
                 range between {{ n }} preceding and 1 preceding)
),
spikes as (
    select org_id, track_id, reporting_period, 'stream_spike' as rule, cast(null as varchar) as territory,
        streams, cast(baseline as decimal(38, 6)) as baseline,
        cast(streams / baseline as decimal(38, 6)) as observed,
        cast({{ var('anomaly_spike_ratio') }} as decimal(38, 6)) as threshold
    from track_baseline
    where baseline_months > 0 and baseline > 0
      and streams >= {{ var('anomaly_min_streams') }}
      and streams >= {{ var('anomaly_spike_ratio') }} * baseline
),
territory_share as (
    select s.org_id, s.track_id, s.reporting_period, s.month_index, s.territory, s.streams,
        t.streams as track_streams, t.baseline_total,
        s.streams / t.streams as share,
        coalesce(sum(s.streams) over w, 0) as territory_baseline_total
    from streams as s
    join track_baseline as t using (org_id, track_id, month_index)
    window w as (partition by s.org_id, s.track_id, s.territory order by s.month_index
                 range between {{ n }} preceding and 1 preceding)
),
dominance as (
    select org_id, track_id, reporting_period, 'territory_dominance' as rule, territory,
        streams, cast(territory_baseline_total / baseline_total as decimal(38, 6)) as baseline,
        cast(share as decimal(38, 6)) as observed,
        cast({{ var('anomaly_dominance_share') }} as decimal(38, 6)) as threshold
    from territory_share
    where baseline_total > 0
      and track_streams >= {{ var('anomaly_min_streams') }}
      and share >= {{ var('anomaly_dominance_share') }}
      and share - territory_baseline_total / baseline_total >= {{ var('anomaly_dominance_jump') }}
)
select
    a.org_id || ':' || a.track_id || ':' || a.reporting_period || ':' || a.rule || ':' || coalesce(a.territory, '') as anomaly_key,
    a.org_id, a.track_id, t.isrc, t.title as track_title, a.reporting_period, a.rule, a.territory,
    a.streams, a.baseline, a.observed, a.threshold
from (select * from spikes union all select * from dominance) as a
left join {{ ref('dim_tracks') }} as t on t.track_id = a.track_id
