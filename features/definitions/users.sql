-- Active users and seat utilisation: distinct users per 30-day window. Days meet as-of dates
-- on the calendar `as_of_days` (each as-of date with the 90 days before it; age 1 = the day
-- before as_of).
WITH user_days AS (
  SELECT DISTINCT customer_id, user_id, CAST(DATE_TRUNC('day', ts) AS TIMESTAMP) AS day
  FROM events
  WHERE user_id IS NOT NULL
),
agg AS (
  SELECT
    u.customer_id, a.as_of,
    COUNT(DISTINCT CASE WHEN a.age <= 30 THEN u.user_id END) AS users_30d,
    COUNT(DISTINCT CASE WHEN a.age > 30 THEN u.user_id END) AS users_prev_30d
  FROM user_days AS u
  JOIN as_of_days AS a ON a.day = u.day AND a.age <= 60
  GROUP BY u.customer_id, a.as_of
),
seats AS (
  SELECT sp.customer_id, sp.as_of, SUM(b.seats) AS seats
  FROM spine AS sp
  JOIN subscriptions AS b
    ON b.customer_id = sp.customer_id AND b.start_date < sp.as_of
   AND (b.end_date IS NULL OR b.end_date >= sp.as_of)
  GROUP BY sp.customer_id, sp.as_of
)
SELECT
  s.customer_id, s.as_of,
  CAST(COALESCE(g.users_30d, 0) AS DOUBLE) AS active_users_30d,
  CAST(COALESCE(g.users_30d, 0) - COALESCE(g.users_prev_30d, 0) AS DOUBLE)
    AS active_users_change_30d,
  CASE WHEN st.seats > 0 THEN COALESCE(g.users_30d, 0) / CAST(st.seats AS DOUBLE) END
    AS seat_utilization_30d
FROM spine AS s
LEFT JOIN agg AS g ON g.customer_id = s.customer_id AND g.as_of = s.as_of
LEFT JOIN seats AS st ON st.customer_id = s.customer_id AND st.as_of = s.as_of
