-- Money invariant: liabilities hold exactly the payable of the latest current run's ledger.
with latest as (
    select l.org_id, l.currency, sum(l.payable) as payable
    from {{ ref('int_ledger_current') }} as l
    join {{ ref('int_royalty_runs_ranked') }} as r using (run_id)
    where r.period_end = (select max(period_end) from {{ ref('int_royalty_runs_ranked') }} as x where x.is_current and x.org_id = l.org_id)
    group by all
)
select t.org_id, t.currency, t.payable, sum(f.payable) as liabilities
from latest as t
left join {{ ref('fct_royalty_liabilities') }} as f on f.org_id = t.org_id and f.currency = t.currency
group by all
having coalesce(sum(f.payable), 0) <> t.payable
