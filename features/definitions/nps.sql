-- NPS: the latest answer before as_of, its change from the answer before, and its age.
WITH answers AS (
  SELECT s.customer_id, s.as_of, n.score, n.responded_at,
         ROW_NUMBER() OVER (PARTITION BY s.customer_id, s.as_of
                            ORDER BY n.responded_at DESC, n.score) AS rk
  FROM spine AS s
  JOIN nps AS n ON n.customer_id = s.customer_id AND n.responded_at < s.as_of
),
agg AS (
  SELECT customer_id, as_of,
         MAX(CASE WHEN rk = 1 THEN score END) AS nps_last,
         MAX(CASE WHEN rk = 2 THEN score END) AS nps_previous,
         MAX(CASE WHEN rk = 1 THEN responded_at END) AS last_at
  FROM answers
  WHERE rk <= 2
  GROUP BY customer_id, as_of
)
SELECT
  s.customer_id, s.as_of,
  CAST(g.nps_last AS DOUBLE) AS nps_last,
  CAST(g.nps_last - g.nps_previous AS DOUBLE) AS nps_change,
  (EPOCH(s.as_of) - EPOCH(g.last_at)) / 86400.0 AS days_since_nps
FROM spine AS s
LEFT JOIN agg AS g ON g.customer_id = s.customer_id AND g.as_of = s.as_of
