"""Reproducible measurements of Herald (run each as ``python -m benchmarks.<name>``).

Importing the package puts the Lambda code (``functions/`` and the resilience layer) on ``sys.path``,
where Lambda would find it, so each benchmark imports it as the functions do.
"""

from local.lambda_.handlers import add_code_paths

add_code_paths()
