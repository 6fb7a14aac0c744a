-- Marketing engagement: opens, clicks and sends over 90 days, events attended over 180 days.
WITH agg AS (
  SELECT
    s.customer_id, s.as_of,
    COUNT(CASE WHEN LOWER(m.action) = 'open' AND m.ts >= s.as_of - INTERVAL 90 DAY THEN 1 END)
      AS opens,
    COUNT(CASE WHEN LOWER(m.action) = 'click' AND m.ts >= s.as_of - INTERVAL 90 DAY THEN 1 END)
      AS clicks,
    COUNT(CASE WHEN LOWER(m.action) = 'sent' AND m.ts >= s.as_of - INTERVAL 90 DAY THEN 1 END)
      AS sent,
    COUNT(CASE WHEN LOWER(m.action) = 'attend' THEN 1 END) AS attended
  FROM spine AS s
  JOIN marketing AS m
    ON m.customer_id = s.customer_id AND m.ts < s.as_of
   AND m.ts >= s.as_of - INTERVAL 180 DAY
  GROUP BY s.customer_id, s.as_of
)
SELECT
  s.customer_id, s.as_of,
  CAST(COALESCE(g.opens, 0) AS DOUBLE) AS marketing_opens_90d,
  CAST(COALESCE(g.clicks, 0) AS DOUBLE) AS marketing_clicks_90d,
  CASE WHEN g.sent > 0 THEN LEAST(1.0, g.opens / CAST(g.sent AS DOUBLE)) END
    AS marketing_open_rate_90d,
  CAST(COALESCE(g.attended, 0) AS DOUBLE) AS events_attended_180d
FROM spine AS s
LEFT JOIN agg AS g ON g.customer_id = s.customer_id AND g.as_of = s.as_of
