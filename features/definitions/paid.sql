-- Paid subscriptions: what a customer's lives (lives.sql) are made of, and the MRR they carry.
-- A subscription is paid when its MRR is positive; without free_is_churn every subscription
-- counts (a downgrade to a free plan keeps the customer). Day numbers (days since 1970-01-01)
-- keep the arithmetic engine-portable; a subscription covers the days [start_day, end_day), and
-- an open end_date is day 99999999.
SELECT s.subscription_id, s.customer_id,
       DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', s.start_date) AS start_day,
       COALESCE(DATE_DIFF('day', TIMESTAMP '1970-01-01 00:00:00', s.end_date), 99999999)
         AS end_day,
       COALESCE(s.mrr, 0.0) AS mrr
FROM subscriptions AS s
CROSS JOIN params AS p
WHERE s.mrr > 0 OR p.free_is_churn = 0
