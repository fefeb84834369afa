"""Patterns: each module in this package adds its tools to the server.

A pattern module defines

- `Settings`: a pydantic-settings class whose environment prefix is the pattern's
  name (`SUMMARIZER_`), so its knobs get variables and CLI flags like every other;
- `register(mcp, gateway)`: adds the pattern's tools, prompts and resources.

Modules are discovered, so adding a pattern is adding a file here.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def discover() -> list[ModuleType]:
    """Every pattern module, in name order."""
    return [
        importlib.import_module(f"{__name__}.{module.name}")
        for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    ]
