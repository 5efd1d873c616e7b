"""Herald's generic resilience library (circuit breaker, retry policy, error classification)."""
