-- Non-contractual churn labels: a customer alive at as_of churns when it has no activity at all
-- in the horizon [as_of + lead, as_of + lead + horizon). Activity during the lead time does not
-- count either way. Complete only when the whole horizon lies inside the export.
WITH days AS (
  SELECT DISTINCT customer_id, DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', ts) AS day
  FROM events
),
rows_ AS (
  SELECT s.customer_id, s.as_of,
         DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', s.as_of) AS as_of_day
  FROM spine AS s
),
active AS (
  SELECT r.customer_id, r.as_of, COUNT(*) AS active_days
  FROM rows_ AS r
  CROSS JOIN params AS p
  JOIN days AS d
    ON d.customer_id = r.customer_id
   AND d.day >= r.as_of_day + p.lead_days
   AND d.day < r.as_of_day + p.lead_days + p.horizon_days
  GROUP BY r.customer_id, r.as_of
)
SELECT
  r.customer_id, r.as_of,
  CASE WHEN a.active_days IS NULL THEN 1 ELSE 0 END AS churned,
  r.as_of_day + p.lead_days + p.horizon_days <= p.observed_until_day + 1 AS label_complete
FROM rows_ AS r
CROSS JOIN params AS p
LEFT JOIN active AS a ON a.customer_id = r.customer_id AND a.as_of = r.as_of
