-- Customers active at each as-of date: a paid subscription started before as_of and not ended
-- before it. A subscription starting on as_of is not yet known, so it does not count.
SELECT DISTINCT s.customer_id, a.as_of
FROM subscriptions AS s
JOIN as_of_dates AS a
  ON s.start_date < a.as_of AND (s.end_date IS NULL OR s.end_date >= a.as_of)
CROSS JOIN params AS p
WHERE s.mrr > 0 OR p.free_is_churn = 0
