-- The money invariant, per current run (one per period) and accounting currency:
--   royalty (payees) + retained + suspense = revenue
-- with revenue recomputed here from the lake (lines of the run's months, from files received
-- before the run), suspense from the run's suspense output, and payees/retained from the run.
with runs as (
    select * from {{ ref('int_royalty_runs_ranked') }} where is_current
),
files as (
    select file_id, received_at from {{ ref('stg_reference__ingest_files') }}
),
lake as (
    select r.run_id, l.currency, {{ cents('sum(l.amount)') }} as revenue
    from runs as r
    join {{ ref('stg_lake__revenue_lines') }} as l
        on l.org_id = r.org_id
        and l.reporting_period between strftime(r.period_start, '%Y-%m') and strftime(r.period_end, '%Y-%m')
    join files as f on f.file_id = l.file_id and f.received_at <= r.created_at
    group by all
),
run_suspense as (
    select r.run_id, s.currency, {{ cents('sum(s.amount)') }} as suspense
    from runs as r
    join {{ ref('stg_runs__suspense') }} as s
        on s.org_id = r.org_id and s.period = r.period and s.version = r.version
    group by all
),
totals as (
    select run_id, currency,
        max(amount) filter (where measure = 'revenue') as run_revenue,
        max(amount) filter (where measure = 'payees') as royalty,
        max(amount) filter (where measure = 'retained') as retained
    from {{ ref('stg_reference__royalty_run_totals') }}
    group by all
)
select
    r.org_id || ':' || r.period || ':' || r.currency as reconciliation_key,
    r.org_id, r.run_id, r.period, r.version, r.status, r.currency,
    cast(coalesce(l.revenue, 0) as decimal(38, 2)) as revenue,
    cast(coalesce(t.royalty, 0) as decimal(38, 2)) as royalty,
    cast(coalesce(t.retained, 0) as decimal(38, 2)) as retained,
    cast(coalesce(s.suspense, 0) as decimal(38, 2)) as suspense,
    cast(coalesce(t.run_revenue, 0) as decimal(38, 2)) as run_revenue
from runs as r
left join lake as l on l.run_id = r.run_id and l.currency = r.currency
left join run_suspense as s on s.run_id = r.run_id and s.currency = r.currency
left join totals as t on t.run_id = r.run_id and t.currency = r.currency
