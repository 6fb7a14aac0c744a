-- Customers "alive" at each as-of date in a non-contractual business: any activity before as_of.
SELECT e.customer_id, a.as_of
FROM (SELECT customer_id, MIN(ts) AS first_ts FROM events GROUP BY customer_id) AS e
JOIN as_of_dates AS a ON e.first_ts < a.as_of
