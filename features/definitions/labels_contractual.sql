-- Contractual churn labels, from the customer's paid lives (lives.sql): a life's end is a churn.
-- The row (customer, as_of) is labeled churned when the life it belongs to ends inside the
-- horizon [as_of + lead, as_of + lead + horizon). Lives ending during the lead time are dropped
-- (too late to act). A churn is complete (final) only once its re-subscription gap lies inside
-- the export: a renewal up to gap_days after life_end would still continue the life. Day numbers
-- (days since 1970-01-01) keep the arithmetic engine-portable.
WITH rows_ AS (
  SELECT s.customer_id, s.as_of, l.life_end,
         DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', s.as_of) AS as_of_day
  FROM spine AS s
  JOIN lives AS l
    ON l.customer_id = s.customer_id
   AND l.life_start < DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', s.as_of)
   AND l.life_end >= DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', s.as_of)
)
SELECT
  r.customer_id, r.as_of,
  CASE WHEN r.life_end < r.as_of_day + p.lead_days + p.horizon_days THEN 1 ELSE 0 END AS churned,
  CASE WHEN r.life_end < r.as_of_day + p.lead_days + p.horizon_days
            THEN r.life_end + p.gap_days <= p.observed_until_day
       ELSE r.as_of_day + p.lead_days + p.horizon_days <= p.observed_until_day + 1
       END AS label_complete
FROM rows_ AS r
CROSS JOIN params AS p
WHERE r.life_end >= r.as_of_day + p.lead_days
