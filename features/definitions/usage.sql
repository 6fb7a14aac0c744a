-- Usage indicators from product events. age = whole days between the event's day and as_of
-- (1 = the day before as_of); only days strictly before as_of are joined. Windowed counts read the
-- last 90 days; lifetime figures add up per-period buckets (the days between consecutive as-of
-- dates) cumulatively, so each event day is joined once, not once per later as-of date.
-- Days meet as-of dates by equality on the calendars `as_of_days` (each as-of date with the 90
-- days before it and their age) and `period_days` (each day with the first as-of date after it).
WITH windowed AS (
  SELECT d.customer_id, a.as_of, d.n, d.logins, d.value, a.age
  FROM event_days AS d
  JOIN as_of_days AS a ON a.day = d.day
),
agg AS (
  SELECT
    customer_id, as_of,
    SUM(CASE WHEN age <= 7 THEN n ELSE 0 END) AS events_7d,
    SUM(CASE WHEN age <= 30 THEN n ELSE 0 END) AS events_30d,
    SUM(CASE WHEN age > 30 AND age <= 60 THEN n ELSE 0 END) AS events_prev_30d,
    SUM(n) AS events_90d,
    COUNT(CASE WHEN age <= 30 THEN 1 END) AS active_days_30d,
    COUNT(*) AS active_days_90d,
    SUM(CASE WHEN age <= 30 THEN logins ELSE 0 END) AS logins_30d,
    SUM(CASE WHEN age > 30 AND age <= 60 THEN logins ELSE 0 END) AS logins_prev_30d,
    -- least-squares slope of daily actions over the last 90 days, x = 90 - age in 0..89:
    -- sum(x) = 4005 and n*sum(x^2) - sum(x)^2 = 5466825 are constants, so no zero-filling
    SUM((90 - age) * n) AS sxy_90d,
    SUM(value) AS value_90d
  FROM windowed
  GROUP BY customer_id, as_of
),
periods AS (
  SELECT as_of, LAG(as_of) OVER (ORDER BY as_of) AS previous_as_of FROM as_of_dates
),
buckets AS (
  SELECT d.customer_id, p.as_of, COUNT(*) AS days, SUM(d.value) AS value,
         MIN(d.first_ts) AS first_ts, MAX(d.last_ts) AS last_ts
  FROM event_days AS d
  JOIN period_days AS p ON p.day = d.day
  GROUP BY d.customer_id, p.as_of
),
grid AS (
  SELECT c.customer_id, p.as_of
  FROM (SELECT DISTINCT customer_id FROM spine) AS c
  CROSS JOIN periods AS p
),
lifetime AS (
  SELECT
    g.customer_id, g.as_of,
    SUM(COALESCE(b.days, 0)) OVER w AS lifetime_active_days,
    SUM(b.value) OVER w AS lifetime_value,
    MIN(b.first_ts) OVER w AS first_ts,
    MAX(b.last_ts) OVER w AS last_ts
  FROM grid AS g
  LEFT JOIN buckets AS b ON b.customer_id = g.customer_id AND b.as_of = g.as_of
  WINDOW w AS (PARTITION BY g.customer_id ORDER BY g.as_of
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
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
  (EPOCH(s.as_of) - EPOCH(l.last_ts)) / 86400.0 AS days_since_last_activity,
  CAST(COALESCE(g.value_90d, 0) AS DOUBLE) AS value_90d,
  CAST(COALESCE(l.lifetime_active_days, 0) AS DOUBLE) AS lifetime_active_days,
  CAST(COALESCE(l.lifetime_value, 0) AS DOUBLE) AS lifetime_value,
  (EPOCH(s.as_of) - EPOCH(l.first_ts)) / 86400.0 AS days_since_first_activity,
  -- the days from the first active day to as_of (whole days: as_of is a UTC midnight), so the
  -- share lies in (0, 1]; unlike the lifetime counts it does not grow with calendar time alone
  CAST(COALESCE(l.lifetime_active_days, 0) AS DOUBLE)
    / CEIL((EPOCH(s.as_of) - EPOCH(l.first_ts)) / 86400.0) AS lifetime_active_share
FROM spine AS s
LEFT JOIN agg AS g ON g.customer_id = s.customer_id AND g.as_of = s.as_of
LEFT JOIN lifetime AS l ON l.customer_id = s.customer_id AND l.as_of = s.as_of
