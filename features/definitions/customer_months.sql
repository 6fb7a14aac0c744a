-- Retention metrics (features/metrics.py): one row per (month, customer) touched by a life, with
-- the status at the month boundaries, the MRR there and the revenue recognised in the month.
-- Reads the customer's paid lives and subscriptions (lives.sql, paid.sql) and ``months`` (m, n:
-- day numbers of the month's first day and of the next month's first day). Active at the start
-- of M = inside a life on day m - 1; lost in M = active at the start and the life ends in M.
WITH status AS (
  SELECT mo.month, mo.m, mo.n, l.customer_id,
         MAX(CASE WHEN l.life_start < mo.m AND l.life_end >= mo.m THEN 1 ELSE 0 END)
           AS active_start,
         MAX(CASE WHEN l.life_start < mo.m AND l.life_end >= mo.m AND l.life_end < mo.n
                  THEN 1 ELSE 0 END) AS lost,
         MAX(CASE WHEN l.life_start >= mo.m AND l.life_start < mo.n THEN 1 ELSE 0 END) AS new,
         MAX(CASE WHEN l.life_start < mo.n AND l.life_end >= mo.n THEN 1 ELSE 0 END) AS active_end
  FROM months AS mo
  JOIN lives AS l ON l.life_start < mo.n AND l.life_end >= mo.m
  GROUP BY mo.month, mo.m, mo.n, l.customer_id
),
state_days AS (
  SELECT m - 1 AS day FROM months UNION SELECT n - 1 FROM months
),
covered AS (
  SELECT d.day, s.customer_id, SUM(s.mrr) AS mrr
  FROM state_days AS d
  JOIN paid AS s ON s.start_day <= d.day AND d.day < s.end_day
  GROUP BY d.day, s.customer_id
),
in_gap AS (  -- inside a life but between subscriptions: the last covered day stands in
  SELECT d.day, l.customer_id, MAX(s.end_day) - 1 AS last_day
  FROM state_days AS d
  JOIN lives AS l ON l.life_start <= d.day AND d.day < l.life_end
  JOIN paid AS s ON s.customer_id = l.customer_id AND s.end_day <= d.day
  ANTI JOIN covered AS c ON c.day = d.day AND c.customer_id = l.customer_id
  GROUP BY d.day, l.customer_id
),
mrr_on AS (
  SELECT day, customer_id, mrr FROM covered
  UNION ALL
  SELECT g.day, g.customer_id, SUM(s.mrr)
  FROM in_gap AS g
  JOIN paid AS s ON s.customer_id = g.customer_id AND s.start_day <= g.last_day
   AND g.last_day < s.end_day
  GROUP BY g.day, g.customer_id
),
revenue AS (
  SELECT mo.month, s.customer_id,
         SUM(s.mrr * (LEAST(s.end_day, mo.n) - GREATEST(s.start_day, mo.m)) / (mo.n - mo.m))
           AS revenue
  FROM months AS mo
  JOIN paid AS s ON s.start_day < mo.n AND s.end_day > mo.m
  GROUP BY mo.month, s.customer_id
),
first_start AS (
  SELECT customer_id, MIN(start_day) AS first_day FROM paid GROUP BY customer_id
)
SELECT st.month, st.customer_id, st.active_start, st.lost, st.new, st.active_end,
       COALESCE(a.mrr, 0.0) AS start_mrr, COALESCE(b.mrr, 0.0) AS end_mrr,
       COALESCE(r.revenue, 0.0) AS revenue, f.first_day
FROM status AS st
JOIN first_start AS f ON f.customer_id = st.customer_id
LEFT JOIN mrr_on AS a ON a.customer_id = st.customer_id AND a.day = st.m - 1
LEFT JOIN mrr_on AS b ON b.customer_id = st.customer_id AND b.day = st.n - 1
LEFT JOIN revenue AS r ON r.customer_id = st.customer_id AND r.month = st.month
ORDER BY st.month, st.customer_id
