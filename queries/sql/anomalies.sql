-- question: Which windows did the anomaly detector flag, most recent first?
-- reads: anomalies
-- fill: run the anomaly stream app and its sink into the `anomalies` dataset (tidelake demo does both)
-- param: since TIMESTAMP = NULL | only windows that start at or after this UTC time
-- param: limit INTEGER = 50 | at most this many windows
SELECT *
FROM anomalies
WHERE $since IS NULL OR window_start >= $since
ORDER BY window_start DESC, count DESC, 1
LIMIT $limit
