"""Reproducible measurements of Herald (run each as ``python -m benchmarks.<name>``).

Importing the package puts the Lambda code (``functions/`` and the resilience layer) on ``sys.path``,
where Lambda would find it, so each benchmark imports it as the functions do.
"""

import sys

from local.functions import CODE_PATHS

sys.path[:0] = [str(path) for path in CODE_PATHS if str(path) not in sys.path]
