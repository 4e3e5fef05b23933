"""The library versions seqwatch's Faust fixes were written against, checked at start-up.

The fixes override methods whose upstream behaviour they were measured against; another
version may have fixed the defect differently, or moved the code the override replaces.
So a worker refuses to start on any other version (pyproject.toml pins the same ones).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from app.errors import ConfigError

PINNED = {
    "faust-streaming": "0.15.3",
    "aiokafka": "0.14.0",
    "mode-streaming": "0.7.1",
}


def mismatches() -> list[str]:
    out = []
    for name, wanted in PINNED.items():
        try:
            found = version(name)
        except PackageNotFoundError:
            found = "not installed"
        if found != wanted:
            out.append(f"{name} {found} (seqwatch's Faust fixes are written for {wanted})")
    return out


def check() -> None:
    problems = mismatches()
    if problems:
        raise ConfigError(
            "unsupported stream library versions: "
            + "; ".join(problems)
            + " - install seqwatch's pinned dependencies (make install)"
        )
