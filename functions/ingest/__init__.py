"""The ingest function: notifications that producers put on the inbound SQS queue."""
