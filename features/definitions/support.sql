-- Support indicators. A ticket counts once opened before as_of; it is "open" if not resolved
-- before as_of; its resolution time and CSAT are known only once it was resolved before as_of.
WITH t AS (
  SELECT s.customer_id, s.as_of, k.opened_at, k.resolved_at, k.csat,
         LOWER(k.priority) IN ('high', 'urgent') AS high,
         DATE_DIFF('day', k.opened_at, s.as_of) AS age,
         k.resolved_at IS NOT NULL AND k.resolved_at < s.as_of AS resolved,
         k.resolved_at IS NOT NULL AND k.resolved_at < s.as_of
           AND k.resolved_at >= s.as_of - INTERVAL 90 DAY AS resolved_90d
  FROM spine AS s
  JOIN tickets AS k ON k.customer_id = s.customer_id AND k.opened_at < s.as_of
),
agg AS (
  SELECT
    customer_id, as_of,
    COUNT(CASE WHEN opened_at >= as_of - INTERVAL 30 DAY THEN 1 END) AS tickets_30d,
    COUNT(CASE WHEN opened_at < as_of - INTERVAL 30 DAY
                AND opened_at >= as_of - INTERVAL 60 DAY THEN 1 END) AS tickets_prev_30d,
    COUNT(CASE WHEN opened_at >= as_of - INTERVAL 90 DAY THEN 1 END) AS tickets_90d,
    COUNT(CASE WHEN opened_at < as_of - INTERVAL 90 DAY
                AND opened_at >= as_of - INTERVAL 365 DAY THEN 1 END) AS tickets_before_90d,
    COUNT(CASE WHEN NOT resolved THEN 1 END) AS open_tickets,
    COUNT(CASE WHEN NOT resolved AND high THEN 1 END) AS high_priority_open,
    COUNT(CASE WHEN high AND opened_at >= as_of - INTERVAL 90 DAY THEN 1 END)
      AS high_priority_90d,
    AVG(CASE WHEN resolved_90d THEN (EPOCH(resolved_at) - EPOCH(opened_at)) / 3600.0 END)
      AS resolution_hours_90d,
    AVG(CASE WHEN resolved_90d THEN csat END) AS csat_90d,
    COUNT(CASE WHEN resolved_90d AND csat <= 2 THEN 1 END) AS low_csat_90d,
    MAX(opened_at) AS last_opened
  FROM t
  GROUP BY customer_id, as_of
)
SELECT
  s.customer_id, s.as_of,
  CAST(COALESCE(g.tickets_30d, 0) AS DOUBLE) AS tickets_30d,
  CAST(COALESCE(g.tickets_90d, 0) AS DOUBLE) AS tickets_90d,
  CAST(COALESCE(g.tickets_30d, 0) - COALESCE(g.tickets_prev_30d, 0) AS DOUBLE)
    AS tickets_change_30d,
  CAST(COALESCE(g.open_tickets, 0) AS DOUBLE) AS open_tickets,
  CAST(COALESCE(g.high_priority_open, 0) AS DOUBLE) AS high_priority_open,
  CAST(COALESCE(g.high_priority_90d, 0) AS DOUBLE) AS high_priority_90d,
  g.resolution_hours_90d,
  CAST(g.csat_90d AS DOUBLE) AS csat_90d,
  CAST(COALESCE(g.low_csat_90d, 0) AS DOUBLE) AS low_csat_90d,
  CASE WHEN COALESCE(g.tickets_before_90d, 0) >= 2 AND COALESCE(g.tickets_90d, 0) = 0
       THEN 1.0 ELSE 0.0 END AS ticket_silence,
  (EPOCH(s.as_of) - EPOCH(g.last_opened)) / 86400.0 AS days_since_last_ticket
FROM spine AS s
LEFT JOIN agg AS g ON g.customer_id = s.customer_id AND g.as_of = s.as_of
