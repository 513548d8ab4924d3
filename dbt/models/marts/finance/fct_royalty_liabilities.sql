-- What the label owes each payee, per currency, from the current run of each period: the
-- latest period's statement (payable, carried forward, reserves still held) and the sum of
-- what every current run made payable.
with ledger as (
    select l.*, r.period_end
    from {{ ref('int_ledger_current') }} as l
    join {{ ref('int_royalty_runs_ranked') }} as r using (run_id)
),
latest as (
    select org_id, max(period_end) as period_end from ledger group by org_id
),
per_payee as (
    select
        l.org_id, l.payee_id, l.currency,
        max(l.period) filter (where l.period_end = t.period_end) as latest_period,
        cast(sum(l.payable) filter (where l.period_end = t.period_end) as decimal(38, 2)) as payable,
        cast(sum(l.carried_forward) filter (where l.period_end = t.period_end) as decimal(38, 2)) as carried_forward,
        cast(sum(l.reserves_outstanding) filter (where l.period_end = t.period_end) as decimal(38, 2)) as reserves_held,
        cast(sum(l.tax) filter (where l.period_end = t.period_end) as decimal(38, 2)) as tax_withheld,
        cast(sum(l.payable) as decimal(38, 2)) as payable_all_periods,
        count(distinct l.run_id) as runs
    from ledger as l join latest as t using (org_id)
    group by all
)
select
    p.org_id || ':' || p.payee_id || ':' || p.currency as liability_key,
    p.org_id, p.payee_id, d.name as payee_name, p.currency, p.latest_period,
    coalesce(p.payable, 0) as payable,
    coalesce(p.carried_forward, 0) as carried_forward,
    coalesce(p.reserves_held, 0) as reserves_held,
    coalesce(p.tax_withheld, 0) as tax_withheld,
    p.payable_all_periods, p.runs
from per_payee as p
left join {{ ref('dim_payees') }} as d on d.payee_id = p.payee_id
