-- Activity in the export's own words: one row per (customer, as_of, term), where a term is an
-- event type or a product feature named in the `vocabulary` table (source, value, term); the
-- rest of each source pools as `<source>:other`. Same conventions as usage.sql: age = whole days
-- between the event's day and as_of, only days strictly before as_of are read, lifetime figures
-- come from per-period buckets so each event day is joined once; days meet as-of dates on the
-- calendars `as_of_days` and `period_days` (see usage.sql). The engine pivots the result
-- to one column per term and metric (features.vocabulary).
-- The roll-ups group by a term's number, not its text (a third fewer CPU seconds); the active
-- users of the per-user figures are users.sql's (`features_users`, built before this).
WITH terms AS (  -- every term, the two pooled ones included, numbered
  SELECT term, source, ROW_NUMBER() OVER (ORDER BY term) AS term_id
  FROM (SELECT term, source FROM vocabulary
        UNION SELECT 'event_type:other' AS term, 'event_type' AS source
        UNION SELECT 'feature:other' AS term, 'feature' AS source) AS named
),
coded AS (
  SELECT v.source, v.value, t.term_id FROM vocabulary AS v JOIN terms AS t ON t.term = v.term
),
tagged AS (
  SELECT e.customer_id, e.ts,
         COALESCE(v.term_id, (SELECT term_id FROM terms WHERE term = 'event_type:other')) AS term_id
  FROM events AS e
  LEFT JOIN coded AS v ON v.source = 'event_type' AND v.value = e.event_type
  UNION ALL
  SELECT e.customer_id, e.ts,
         COALESCE(v.term_id, (SELECT term_id FROM terms WHERE term = 'feature:other')) AS term_id
  FROM events AS e
  LEFT JOIN coded AS v ON v.source = 'feature' AND v.value = e.feature
  WHERE e.feature IS NOT NULL
),
daily AS (
  SELECT customer_id, term_id, CAST(DATE_TRUNC('day', ts) AS TIMESTAMP) AS day,
         COUNT(*) AS n, MAX(ts) AS last_ts
  FROM tagged
  GROUP BY customer_id, term_id, CAST(DATE_TRUNC('day', ts) AS TIMESTAMP)
),
windowed AS (
  SELECT d.customer_id, a.as_of, d.term_id, d.n, a.age
  FROM daily AS d
  JOIN as_of_days AS a ON a.day = d.day
),
agg AS (
  SELECT customer_id, as_of, term_id,
         SUM(CASE WHEN age <= 30 THEN n ELSE 0 END) AS n_30d,
         SUM(CASE WHEN age > 30 AND age <= 60 THEN n ELSE 0 END) AS n_prev_30d,
         SUM(n) AS n_90d
  FROM windowed
  GROUP BY customer_id, as_of, term_id
),
totals AS (
  SELECT g.customer_id, g.as_of, t.source, SUM(g.n_90d) AS source_90d
  FROM agg AS g JOIN terms AS t ON t.term_id = g.term_id
  GROUP BY g.customer_id, g.as_of, t.source
),
periods AS (
  SELECT as_of FROM as_of_dates
),
buckets AS (
  SELECT d.customer_id, d.term_id, p.as_of, MAX(d.last_ts) AS last_ts
  FROM daily AS d
  JOIN period_days AS p ON p.day = d.day
  GROUP BY d.customer_id, d.term_id, p.as_of
),
pairs AS (
  SELECT DISTINCT customer_id, term_id FROM buckets
),
lifetime AS (
  SELECT g.customer_id, g.term_id, g.as_of,
         MAX(b.last_ts) OVER (PARTITION BY g.customer_id, g.term_id ORDER BY g.as_of
                              ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS last_ts
  FROM (SELECT c.customer_id, c.term_id, p.as_of FROM pairs AS c CROSS JOIN periods AS p) AS g
  LEFT JOIN buckets AS b
    ON b.customer_id = g.customer_id AND b.term_id = g.term_id AND b.as_of = g.as_of
)
SELECT
  s.customer_id, s.as_of, tm.term,
  CAST(COALESCE(g.n_30d, 0) AS DOUBLE) AS n_30d,
  CAST(COALESCE(g.n_90d, 0) AS DOUBLE) AS n_90d,
  CASE WHEN g.n_prev_30d > 0
       THEN (g.n_30d - g.n_prev_30d) / CAST(g.n_prev_30d AS DOUBLE) END AS change_30d,
  (EPOCH(s.as_of) - EPOCH(l.last_ts)) / 86400.0 AS days_since,
  CASE WHEN t.source_90d > 0 THEN COALESCE(g.n_90d, 0) / CAST(t.source_90d AS DOUBLE) END
    AS share_90d,
  CASE WHEN u.active_users_30d > 0 THEN COALESCE(g.n_30d, 0) / u.active_users_30d END
    AS per_user_30d
FROM spine AS s
JOIN lifetime AS l ON l.customer_id = s.customer_id AND l.as_of = s.as_of
JOIN terms AS tm ON tm.term_id = l.term_id
LEFT JOIN agg AS g ON g.customer_id = s.customer_id AND g.as_of = s.as_of AND g.term_id = l.term_id
LEFT JOIN totals AS t ON t.customer_id = s.customer_id AND t.as_of = s.as_of AND t.source = tm.source
LEFT JOIN features_users AS u ON u.customer_id = s.customer_id AND u.as_of = s.as_of
WHERE l.last_ts IS NOT NULL
