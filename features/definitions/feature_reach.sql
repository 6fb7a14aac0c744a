-- How many customers used each product feature in the 90 days before each as-of date: the reach
-- that ranks the core features (product_features.sql). A fact across customers, computed once;
-- a build in customer buckets (features.engine) adds up the buckets' counts (each customer is in
-- one bucket, so the sum is the distinct count).
WITH feature_days AS (
  SELECT DISTINCT customer_id, feature, CAST(DATE_TRUNC('day', ts) AS TIMESTAMP) AS day
  FROM events
  WHERE feature IS NOT NULL
)
SELECT a.as_of, f.feature, COUNT(DISTINCT f.customer_id) AS customers
FROM feature_days AS f
JOIN as_of_days AS a ON a.day = f.day  -- the 90 days before each as-of date
GROUP BY a.as_of, f.feature
