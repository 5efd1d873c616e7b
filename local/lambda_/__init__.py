"""The Lambda service, locally: the template's functions run in this process, their context, the SQS pollers and
the scheduler that plays their schedules."""
