"""Patterns: your tools. Each module (or subpackage, with its data) here is one pattern.

A pattern defines

- `Settings`: a pydantic-settings class whose environment prefix is the pattern's
  name (`SUMMARIZER_`), so each of its knobs is an environment variable and a CLI flag
  like every other setting (give each a `description`: `--help` and the docs'
  configuration page show it);
- `register(mcp, gateway, settings)`: adds the pattern's tools, prompts and resources
  to `mcp`; a tool asks for model output through `LLM(ctx, gateway)` (see `..core`).

Patterns are discovered, so adding one is adding a module here.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def discover() -> list[ModuleType]:
    """Every pattern, in name order; a module that breaks the contract is an error."""
    found = [
        importlib.import_module(f"{__name__}.{module.name}")
        for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    ]
    for pattern in found:
        if not (hasattr(pattern, "Settings") and hasattr(pattern, "register")):
            raise TypeError(
                f"{pattern.__file__} is in patterns/ but does not define `Settings` "
                "and `register(mcp, gateway, settings)`; see patterns/__init__.py."
            )
    return found
