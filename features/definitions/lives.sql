-- A customer's paid lives: the one definition of "being a customer" that the churn labels, the
-- retention metrics and the workflow facts read. Paid subscriptions (paid.sql) are chained in
-- order of start: one starting at most gap_days after the coverage so far ended continues the
-- life (a late renewal is not churn); a later one starts a new life. A life covers the days
-- [life_start, life_end); its end is a churn. A later life starts after every earlier one ended,
-- so the latest life a customer has started holds its latest end. Ties in the order (same
-- days) are broken by subscription_id, so both windows agree on it in every engine.
WITH ordered AS (
  SELECT customer_id, subscription_id, start_day, end_day,
         MAX(end_day) OVER (PARTITION BY customer_id ORDER BY start_day, end_day, subscription_id
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
  FROM paid
),
numbered AS (
  SELECT o.customer_id, o.start_day, o.end_day,
         SUM(CASE WHEN o.prev_end IS NULL OR o.start_day > o.prev_end + p.gap_days THEN 1 ELSE 0
             END) OVER (PARTITION BY o.customer_id
                        ORDER BY o.start_day, o.end_day, o.subscription_id
                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS life
  FROM ordered AS o
  CROSS JOIN params AS p
)
SELECT customer_id, life, MIN(start_day) AS life_start, MAX(end_day) AS life_end
FROM numbered
GROUP BY customer_id, life
