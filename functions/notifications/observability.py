"""Logger and EMF metrics for every Herald function; log fields are structured and never personal data."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="herald")
metrics = Metrics(namespace="Herald", service="herald")
