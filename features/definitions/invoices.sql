-- Payment indicators. An invoice is late at as_of if it fell due before as_of and was paid after
-- its due date or is still unpaid; payment after as_of is unknown, so it reads as unpaid.
WITH i AS (
  SELECT s.customer_id, s.as_of, v.amount, v.due_at,
         v.paid_at IS NULL OR v.paid_at >= s.as_of AS unpaid,
         v.due_at < s.as_of AND v.due_at >= s.as_of - INTERVAL 180 DAY AS due_180d,
         v.due_at < s.as_of AND (v.paid_at IS NULL OR v.paid_at > v.due_at) AS late,
         GREATEST(0.0, (EPOCH(LEAST(COALESCE(v.paid_at, s.as_of), s.as_of)) - EPOCH(v.due_at))
                       / 86400.0) AS days_late
  FROM spine AS s
  JOIN invoices AS v ON v.customer_id = s.customer_id AND v.issued_at < s.as_of
),
agg AS (
  SELECT
    customer_id, as_of,
    COUNT(CASE WHEN due_180d AND late THEN 1 END) AS invoices_late_180d,
    COUNT(CASE WHEN unpaid THEN 1 END) AS unpaid_invoices,
    SUM(CASE WHEN unpaid AND due_at < as_of THEN amount ELSE 0 END) AS overdue_amount,
    AVG(CASE WHEN due_180d THEN days_late END) AS payment_delay_days_180d
  FROM i
  GROUP BY customer_id, as_of
)
SELECT
  s.customer_id, s.as_of,
  CAST(COALESCE(g.invoices_late_180d, 0) AS DOUBLE) AS invoices_late_180d,
  CAST(COALESCE(g.unpaid_invoices, 0) AS DOUBLE) AS unpaid_invoices,
  CAST(COALESCE(g.overdue_amount, 0) AS DOUBLE) AS overdue_amount,
  g.payment_delay_days_180d
FROM spine AS s
LEFT JOIN agg AS g ON g.customer_id = s.customer_id AND g.as_of = s.as_of
