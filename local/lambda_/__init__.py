"""The Lambda service, locally: the template's functions run in this process, their context, and the SQS pollers."""
