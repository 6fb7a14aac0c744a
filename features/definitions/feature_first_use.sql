-- The first day anyone used each product feature: when it launched (product_features.sql). A
-- fact across customers, computed once; a build in customer buckets (features.engine) keeps the
-- earliest of the buckets' days.
SELECT feature, MIN(CAST(DATE_TRUNC('day', ts) AS TIMESTAMP)) AS first_day
FROM events
WHERE feature IS NOT NULL
GROUP BY feature
