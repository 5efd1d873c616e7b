"""`herald`: one command for operators and developers, over Herald's HTTP API only.

It imports nothing from ``functions/`` and, from ``local/``, only the local runtime's default keys, so it works
against a deployed stack from any machine. Entry point: ``cli.main:app``.
"""
