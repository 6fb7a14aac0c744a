-- Core-feature breadth and depth, and adoption of recently launched features.
-- Core features at an as-of date = the 5 features used by the most customers in the 90 days
-- before it; a feature is "launched" on the first day anyone used it (at least 30 days after
-- the export's first event, so features that simply predate the export are not "new").
-- Reach and first use are facts across customers (feature_reach.sql, feature_first_use.sql),
-- computed once; everything here is per customer. Distinct features are counted as rows of one
-- row per customer, as_of and feature (cheaper than COUNT(DISTINCT ...) on the day rows).
WITH feature_days AS (
  SELECT customer_id, feature, CAST(DATE_TRUNC('day', ts) AS TIMESTAMP) AS day, COUNT(*) AS n
  FROM events
  WHERE feature IS NOT NULL
  GROUP BY customer_id, feature, CAST(DATE_TRUNC('day', ts) AS TIMESTAMP)
),
recent AS (
  SELECT f.customer_id, f.feature, a.as_of, f.n, a.age
  FROM feature_days AS f
  JOIN as_of_days AS a ON a.day = f.day  -- the 90 days before each as-of date
),
core AS (
  SELECT as_of, feature
  FROM (
    SELECT as_of, feature,
           ROW_NUMBER() OVER (PARTITION BY as_of ORDER BY customers DESC, feature) AS rk
    FROM feature_reach
  ) AS ranked
  WHERE rk <= 5
),
feature_windows AS (  -- each feature once per customer and as-of date
  SELECT
    r.customer_id, r.as_of, r.feature, MAX(c.feature) IS NOT NULL AS core,
    MIN(r.age) AS first_age,
    MAX(CASE WHEN r.age > 30 AND r.age <= 60 THEN 1 ELSE 0 END) AS in_prev_30d,
    SUM(CASE WHEN r.age <= 30 THEN r.n ELSE 0 END) AS n_30d
  FROM recent AS r
  LEFT JOIN core AS c ON c.as_of = r.as_of AND c.feature = r.feature
  GROUP BY r.customer_id, r.as_of, r.feature
),
usage AS (
  SELECT
    customer_id, as_of,
    COUNT(CASE WHEN first_age <= 30 AND core THEN 1 END) AS core_30d,
    COUNT(CASE WHEN in_prev_30d = 1 AND core THEN 1 END) AS core_prev_30d,
    SUM(CASE WHEN core THEN n_30d ELSE 0 END) AS core_events_30d,
    SUM(n_30d) AS events_30d,
    COUNT(CASE WHEN first_age <= 30 THEN 1 END) AS breadth_30d
  FROM feature_windows
  GROUP BY customer_id, as_of
),
launches AS (
  SELECT feature, first_day AS launched
  FROM feature_first_use
  WHERE first_day >= (SELECT MIN(first_day) FROM feature_first_use) + INTERVAL 30 DAY
),
new_features AS (
  SELECT a.as_of, l.feature
  FROM launches AS l
  JOIN as_of_dates AS a ON l.launched < a.as_of AND l.launched >= a.as_of - INTERVAL 90 DAY
),
adoption AS (
  SELECT as_of, customer_id, COUNT(*) AS adopted
  FROM (SELECT DISTINCT nf.as_of, f.customer_id, f.feature
        FROM new_features AS nf
        JOIN feature_days AS f ON f.feature = nf.feature AND f.day < nf.as_of) AS used
  GROUP BY as_of, customer_id
),
available AS (
  SELECT as_of, COUNT(*) AS launched FROM new_features GROUP BY as_of
)
SELECT
  s.customer_id, s.as_of,
  CAST(COALESCE(u.core_30d, 0) AS DOUBLE) AS core_breadth_30d,
  CAST(COALESCE(u.core_30d, 0) - COALESCE(u.core_prev_30d, 0) AS DOUBLE)
    AS core_breadth_change_30d,
  CAST(COALESCE(u.core_events_30d, 0) AS DOUBLE) AS core_events_30d,
  CASE WHEN u.events_30d > 0 THEN u.core_events_30d / CAST(u.events_30d AS DOUBLE) END
    AS core_share_30d,
  CAST(COALESCE(u.breadth_30d, 0) AS DOUBLE) AS feature_breadth_30d,
  CASE WHEN av.launched > 0 THEN COALESCE(ad.adopted, 0) / CAST(av.launched AS DOUBLE) END
    AS new_feature_adoption_90d
FROM spine AS s
LEFT JOIN usage AS u ON u.customer_id = s.customer_id AND u.as_of = s.as_of
LEFT JOIN available AS av ON av.as_of = s.as_of
LEFT JOIN adoption AS ad ON ad.customer_id = s.customer_id AND ad.as_of = s.as_of
