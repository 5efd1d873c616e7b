"""The scheduled health monitor."""
