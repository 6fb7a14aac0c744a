-- Events rolled up to one row per customer and UTC day. As-of dates are midnights, so every
-- half-open window [as_of - w, as_of) is a whole number of these days: the roll-up loses nothing.
-- `sign_in_events` lists (once each) the event types the vocabulary reads as a sign-in
-- (features.vocabulary).
SELECT
  e.customer_id,
  CAST(DATE_TRUNC('day', e.ts) AS TIMESTAMP) AS day,
  COUNT(*) AS n,
  COUNT(s.event_type) AS logins,
  SUM(e.value) AS value,
  MIN(e.ts) AS first_ts,
  MAX(e.ts) AS last_ts
FROM events AS e
LEFT JOIN sign_in_events AS s ON s.event_type = e.event_type
GROUP BY e.customer_id, CAST(DATE_TRUNC('day', e.ts) AS TIMESTAMP)
