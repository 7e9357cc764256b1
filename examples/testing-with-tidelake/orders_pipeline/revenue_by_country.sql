SELECT country, count(*) AS orders, sum(amount_cents) AS revenue_cents
FROM orders
GROUP BY country
ORDER BY country
