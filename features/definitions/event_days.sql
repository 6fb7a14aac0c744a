-- Events rolled up to one row per customer and UTC day. As-of dates are midnights, so every
-- half-open window [as_of - w, as_of) is a whole number of these days: the roll-up loses nothing.
-- `sign_in` marks the event types the vocabulary reads as a sign-in (features.vocabulary).
SELECT
  customer_id,
  CAST(DATE_TRUNC('day', ts) AS TIMESTAMP) AS day,
  COUNT(*) AS n,
  COUNT(CASE WHEN sign_in THEN 1 END) AS logins,
  SUM(value) AS value,
  MIN(ts) AS first_ts,
  MAX(ts) AS last_ts
FROM events
GROUP BY customer_id, CAST(DATE_TRUNC('day', ts) AS TIMESTAMP)
