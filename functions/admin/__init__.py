"""The admin API (`/admin/*`): clients, signing-secret rotation, erasure."""
