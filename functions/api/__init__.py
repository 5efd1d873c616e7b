"""The API function: HTTP routes for notifications and health."""
