"""Search-quality metrics: their definitions, the ranker comparison, the dashboard's data.

- ``definitions``: what each metric means, from a session's shown results and events
  (``session_stats``) to the numbers over many sessions (``metrics_of``). docs/metrics.md
  states the same definitions in words; tests/test_metrics_exact.py checks them against
  a brute-force computation.
- ``compare``: two rankers side by side, with bootstrap intervals.

Storage keeps one derived row per session (``storage.sql`` ``session_stats``); the
service (``service.metrics``) refreshes it and asks storage for sums over a range.
"""
