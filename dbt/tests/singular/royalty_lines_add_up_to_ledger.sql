-- Money invariant: each contract's royalty lines (by release) add up to its ledger earnings.
select l.run_id, l.contract_id, l.earnings, sum(r.amount) as lines_total
from {{ ref('int_ledger_current') }} as l
left join {{ ref('fct_royalty_lines') }} as r on r.run_id = l.run_id and r.contract_id = l.contract_id
group by all
having coalesce(sum(r.amount), 0) <> l.earnings
