-- Commercial indicators from subscriptions. A subscription is known once it started before
-- as_of; its end is known only if it ended before as_of. Consecutive subscriptions of a customer
-- (by start date) that raise or lower MRR are upgrades and downgrades.
WITH subs AS (
  SELECT customer_id, start_date, end_date, mrr, seats,
         LAG(mrr) OVER (PARTITION BY customer_id ORDER BY start_date, subscription_id) AS prev_mrr
  FROM subscriptions
),
agg AS (
  SELECT
    s.customer_id, s.as_of,
    SUM(CASE WHEN b.end_date IS NULL OR b.end_date >= s.as_of THEN b.mrr ELSE 0 END) AS mrr,
    SUM(CASE WHEN b.start_date < s.as_of - INTERVAL 90 DAY
              AND (b.end_date IS NULL OR b.end_date >= s.as_of - INTERVAL 90 DAY)
             THEN b.mrr ELSE 0 END) AS mrr_90d_ago,
    COUNT(CASE WHEN b.start_date >= s.as_of - INTERVAL 180 DAY AND b.mrr > b.prev_mrr
               THEN 1 END) AS upgrades_180d,
    COUNT(CASE WHEN b.start_date >= s.as_of - INTERVAL 180 DAY AND b.mrr < b.prev_mrr
               THEN 1 END) AS downgrades_180d,
    SUM(CASE WHEN b.end_date IS NULL OR b.end_date >= s.as_of THEN b.seats END) AS seats,
    MIN(b.start_date) AS first_start
  FROM spine AS s
  JOIN subs AS b ON b.customer_id = s.customer_id AND b.start_date < s.as_of
  GROUP BY s.customer_id, s.as_of
)
SELECT
  s.customer_id, s.as_of,
  CAST(COALESCE(g.mrr, 0) AS DOUBLE) AS mrr,
  CASE WHEN g.mrr_90d_ago > 0 THEN (g.mrr - g.mrr_90d_ago) / g.mrr_90d_ago END
    AS mrr_change_90d,
  CAST(COALESCE(g.upgrades_180d, 0) AS DOUBLE) AS upgrades_180d,
  CAST(COALESCE(g.downgrades_180d, 0) AS DOUBLE) AS downgrades_180d,
  CAST(g.seats AS DOUBLE) AS seats,
  CAST(365 - (DATE_DIFF('day', g.first_start, s.as_of) % 365) AS DOUBLE) AS days_to_renewal
FROM spine AS s
LEFT JOIN agg AS g ON g.customer_id = s.customer_id AND g.as_of = s.as_of
