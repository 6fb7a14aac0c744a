-- Each customer's facts as of a moment, for the workflow rules, exit forms and closed loop.
-- ``clock`` holds now_at (the instant, naive UTC) and today_day (its UTC day number). Who is a
-- customer comes from the paid lives (lives.sql), as in the labels and the retention metrics: a
-- customer is active while inside a life started by today or less than gap_days after its end
-- (a late renewal is not churn); once that gap has passed, churned_at is the end of the latest
-- life. MRR is that of the paid subscriptions covering today. Activity and paid invoices count
-- only strictly before now_at. Customers who sign up after today have no row.
WITH now_mrr AS (
  SELECT s.customer_id, SUM(s.mrr) AS mrr
  FROM paid AS s
  CROSS JOIN clock AS k
  WHERE s.start_day <= k.today_day AND s.end_day > k.today_day
  GROUP BY s.customer_id
),
started AS (
  SELECT s.customer_id, MAX(s.start_day) AS last_start_day
  FROM paid AS s
  CROSS JOIN clock AS k
  WHERE s.start_day <= k.today_day
  GROUP BY s.customer_id
),
latest_life AS (  -- the latest life started by today holds the latest end (lives.sql)
  SELECT l.customer_id, MAX(l.life_end) AS life_end
  FROM lives AS l
  CROSS JOIN clock AS k
  WHERE l.life_start <= k.today_day
  GROUP BY l.customer_id
),
activity AS (
  SELECT e.customer_id, MAX(e.ts) AS last_activity_at
  FROM events AS e
  CROSS JOIN clock AS k
  WHERE e.ts < k.now_at
  GROUP BY e.customer_id
),
paid_invoices AS (
  SELECT i.customer_id, MAX(i.paid_at) AS last_paid_at
  FROM invoices AS i
  CROSS JOIN clock AS k
  WHERE i.paid_at < k.now_at
  GROUP BY i.customer_id
)
SELECT c.customer_id, c.signup_date,
       COALESCE(m.mrr, 0.0) AS mrr,
       COALESCE(l.life_end + p.gap_days > k.today_day, FALSE) AS active,
       CASE WHEN l.life_end + p.gap_days <= k.today_day
            THEN CAST(DATE '1970-01-01' + CAST(l.life_end AS INTEGER) AS TIMESTAMP) END AS churned_at,
       a.last_activity_at,
       GREATEST(i.last_paid_at, CAST(DATE '1970-01-01' + CAST(s.last_start_day AS INTEGER) AS TIMESTAMP))
         AS last_purchase_at
FROM customers AS c
CROSS JOIN clock AS k
CROSS JOIN params AS p
LEFT JOIN now_mrr AS m ON m.customer_id = c.customer_id
LEFT JOIN latest_life AS l ON l.customer_id = c.customer_id
LEFT JOIN started AS s ON s.customer_id = c.customer_id
LEFT JOIN activity AS a ON a.customer_id = c.customer_id
LEFT JOIN paid_invoices AS i ON i.customer_id = c.customer_id
WHERE DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', c.signup_date) <= k.today_day
ORDER BY c.customer_id
