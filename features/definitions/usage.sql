-- Usage indicators from product events. age = whole days between the event's day and as_of
-- (1 = the day before as_of); only days strictly before as_of are joined.
WITH windowed AS (
  SELECT d.customer_id, a.as_of, d.n, d.logins, d.value, d.first_ts, d.last_ts,
         DATE_DIFF('day', d.day, a.as_of) AS age
  FROM event_days AS d
  JOIN as_of_dates AS a ON d.day < a.as_of
),
agg AS (
  SELECT
    customer_id, as_of,
    SUM(CASE WHEN age <= 7 THEN n ELSE 0 END) AS events_7d,
    SUM(CASE WHEN age <= 30 THEN n ELSE 0 END) AS events_30d,
    SUM(CASE WHEN age > 30 AND age <= 60 THEN n ELSE 0 END) AS events_prev_30d,
    SUM(CASE WHEN age <= 90 THEN n ELSE 0 END) AS events_90d,
    COUNT(CASE WHEN age <= 30 THEN 1 END) AS active_days_30d,
    COUNT(CASE WHEN age <= 90 THEN 1 END) AS active_days_90d,
    SUM(CASE WHEN age <= 30 THEN logins ELSE 0 END) AS logins_30d,
    SUM(CASE WHEN age > 30 AND age <= 60 THEN logins ELSE 0 END) AS logins_prev_30d,
    -- least-squares slope of daily actions over the last 90 days, x = 90 - age in 0..89:
    -- sum(x) = 4005 and n*sum(x^2) - sum(x)^2 = 5466825 are constants, so no zero-filling
    SUM(CASE WHEN age <= 90 THEN (90 - age) * n ELSE 0 END) AS sxy_90d,
    SUM(CASE WHEN age <= 90 THEN value ELSE 0 END) AS value_90d,
    COUNT(*) AS lifetime_active_days,
    SUM(value) AS lifetime_value,
    MIN(first_ts) AS first_ts,
    MAX(last_ts) AS last_ts
  FROM windowed
  GROUP BY customer_id, as_of
)
SELECT
  s.customer_id, s.as_of,
  CAST(COALESCE(g.events_7d, 0) AS DOUBLE) AS events_7d,
  CAST(COALESCE(g.events_30d, 0) AS DOUBLE) AS events_30d,
  CAST(COALESCE(g.events_90d, 0) AS DOUBLE) AS events_90d,
  CAST(COALESCE(g.active_days_30d, 0) AS DOUBLE) AS active_days_30d,
  CAST(COALESCE(g.active_days_90d, 0) AS DOUBLE) AS active_days_90d,
  CAST(COALESCE(g.logins_30d, 0) AS DOUBLE) AS logins_30d,
  CASE WHEN g.events_prev_30d > 0
       THEN (g.events_30d - g.events_prev_30d) / CAST(g.events_prev_30d AS DOUBLE) END
    AS activity_change_30d,
  CASE WHEN g.logins_prev_30d > 0
       THEN (g.logins_30d - g.logins_prev_30d) / CAST(g.logins_prev_30d AS DOUBLE) END
    AS logins_change_30d,
  CASE WHEN g.events_90d > 0
       THEN 7.0 * ((90.0 * g.sxy_90d - 4005.0 * g.events_90d) / 5466825.0)
            / (g.events_90d / 90.0) END AS activity_slope_90d,
  (EPOCH(s.as_of) - EPOCH(g.last_ts)) / 86400.0 AS days_since_last_activity,
  CAST(COALESCE(g.value_90d, 0) AS DOUBLE) AS value_90d,
  CAST(COALESCE(g.lifetime_active_days, 0) AS DOUBLE) AS lifetime_active_days,
  CAST(COALESCE(g.lifetime_value, 0) AS DOUBLE) AS lifetime_value,
  (EPOCH(s.as_of) - EPOCH(g.first_ts)) / 86400.0 AS days_since_first_activity
FROM spine AS s
LEFT JOIN agg AS g ON g.customer_id = s.customer_id AND g.as_of = s.as_of
