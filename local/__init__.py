"""Herald's local runtime: the whole system on one machine, with no Docker and no AWS account."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
