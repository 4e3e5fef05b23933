"""seqwatch: Elastic EQL sequence detection on Kafka streams.

`app.app` is the Faust application configured from SEQWATCH_* variables, so Faust's own
`faust -A app worker` runs the same worker as `seqwatch worker`.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from app.cli.worker import settings_from_environment
        from app.worker.app import build_app

        faust_app = build_app(settings_from_environment().validate())
        globals()["app"] = faust_app
        return faust_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
