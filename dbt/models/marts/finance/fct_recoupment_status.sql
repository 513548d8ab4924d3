-- Per contract, from its latest current run: the balance, what is still unrecouped, and what
-- was charged and recouped over every current run.
with ledger as (
    select l.*, r.period_end,
        row_number() over (partition by l.contract_id order by r.period_end desc) as recency
    from {{ ref('int_ledger_current') }} as l
    join {{ ref('int_royalty_runs_ranked') }} as r using (run_id)
),
to_date as (
    select contract_id,
        cast(sum(advances) as decimal(38, 2)) as advances_to_date,
        cast(sum(costs) as decimal(38, 2)) as costs_to_date,
        cast(sum(recouped) as decimal(38, 2)) as recouped_to_date,
        cast(sum(earnings) as decimal(38, 2)) as earnings_to_date
    from ledger group by contract_id
)
select
    l.contract_id, l.org_id, l.payee_id, l.contract_reference, l.currency, l.pool,
    l.period as latest_period, l.run_id, l.status as ledger_status,
    l.closing as closing_balance,
    cast(greatest(-l.closing, 0) as decimal(38, 2)) as unrecouped_balance,
    l.closing >= 0 as is_recouped,
    t.advances_to_date, t.costs_to_date, t.recouped_to_date, t.earnings_to_date
from ledger as l join to_date as t using (contract_id)
where l.recency = 1
