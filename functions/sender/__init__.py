"""The sender function: an SQS consumer delivering notifications through providers."""
