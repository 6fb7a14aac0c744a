-- Non-contractual churn labels: a customer alive at as_of churns when it has no activity at all
-- in the horizon [as_of + lead, as_of + lead + horizon). Activity during the lead time does not
-- count either way. Complete only when the whole horizon lies inside the export.
-- Time to churn for survival models: a customer is lost at the start of its first silence of at
-- least horizon_days on or after as_of (the day after its last activity before that silence, or
-- as_of itself when the horizon from as_of is silent). duration_days counts days from as_of to
-- that day when the silence lies wholly inside the export, else the days the customer is known
-- to have been active (censored); followup_days is the last day offset whose fate is known for
-- every row of this as_of: a silence starting up to it lies inside the export.
WITH days AS (
  SELECT DISTINCT customer_id, DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', ts) AS day
  FROM events
),
gaps AS (
  SELECT customer_id, day,
         LEAD(day) OVER (PARTITION BY customer_id ORDER BY day) AS next_day
  FROM days
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
),
first_after AS (
  SELECT r.customer_id, r.as_of, MIN(d.day) AS first_day
  FROM rows_ AS r
  JOIN days AS d ON d.customer_id = r.customer_id AND d.day >= r.as_of_day
  GROUP BY r.customer_id, r.as_of
),
silence AS (
  SELECT r.customer_id, r.as_of, MIN(g.day) AS last_day
  FROM rows_ AS r
  CROSS JOIN params AS p
  JOIN gaps AS g
    ON g.customer_id = r.customer_id
   AND g.day >= r.as_of_day
   AND (g.next_day IS NULL OR g.next_day > g.day + p.horizon_days)
  GROUP BY r.customer_id, r.as_of
),
lost AS (
  SELECT r.customer_id, r.as_of, r.as_of_day,
         CASE WHEN f.first_day IS NULL OR f.first_day >= r.as_of_day + p.horizon_days THEN 0
              ELSE l.last_day + 1 - r.as_of_day END AS lost_after,
         p.observed_until_day + 1 - p.horizon_days - r.as_of_day AS followup_days
  FROM rows_ AS r
  CROSS JOIN params AS p
  LEFT JOIN first_after AS f ON f.customer_id = r.customer_id AND f.as_of = r.as_of
  LEFT JOIN silence AS l ON l.customer_id = r.customer_id AND l.as_of = r.as_of
)
SELECT
  r.customer_id, r.as_of,
  CASE WHEN a.active_days IS NULL THEN 1 ELSE 0 END AS churned,
  r.as_of_day + p.lead_days + p.horizon_days <= p.observed_until_day + 1 AS label_complete,
  t.lost_after AS duration_days,
  t.lost_after <= t.followup_days AS event_observed,
  t.followup_days
FROM rows_ AS r
CROSS JOIN params AS p
LEFT JOIN active AS a ON a.customer_id = r.customer_id AND a.as_of = r.as_of
JOIN lost AS t ON t.customer_id = r.customer_id AND t.as_of = r.as_of
