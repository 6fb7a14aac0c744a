-- Tenure and lifecycle stage. Stage thresholds: onboarding < 90 days, adoption < 365 days,
-- renewal = within 60 days before a yearly anniversary of signing up, otherwise mature.
WITH t AS (
  SELECT s.customer_id, s.as_of, DATE_DIFF('day', c.signup_date, s.as_of) AS tenure
  FROM spine AS s
  LEFT JOIN customers AS c ON c.customer_id = s.customer_id
)
SELECT
  customer_id, as_of,
  CAST(tenure AS DOUBLE) AS tenure_days,
  CASE WHEN tenure IS NULL THEN NULL
       WHEN tenure < 90 THEN 'onboarding'
       WHEN tenure < 365 THEN 'adoption'
       WHEN 365 - (tenure % 365) <= 60 THEN 'renewal'
       ELSE 'mature' END AS lifecycle_stage
FROM t
