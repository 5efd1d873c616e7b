"""Herald's notification domain, shared by every function: models, status store, queues, channels, providers."""
