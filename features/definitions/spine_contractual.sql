-- Customers active at each as-of date: a paid subscription (paid.sql) started before as_of and
-- not ended before it. A subscription starting on as_of is not yet known, so it does not count.
SELECT DISTINCT p.customer_id, a.as_of
FROM paid AS p
JOIN as_of_dates AS a
  ON p.start_day < DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', a.as_of)
 AND p.end_day >= DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', a.as_of)
