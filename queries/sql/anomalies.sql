-- question: Which minutes had the most anomalous page-view counts (random cut forest score)?
-- reads: page_view_anomalies
-- fill: run the page-view-anomalies stream app and the analytics sink into `page_view_anomalies` (tidelake demo does both)
-- param: since TIMESTAMP = NULL | only windows that start at or after this UTC time
-- param: min_score DOUBLE = 0 | only windows scored at least this
-- param: limit INTEGER = 10 | at most this many windows
SELECT window_start, window_end, count, anomaly_score
FROM page_view_anomalies
WHERE ($since IS NULL OR window_start >= $since) AND anomaly_score >= $min_score
ORDER BY anomaly_score DESC, window_start
LIMIT $limit
