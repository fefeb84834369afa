"""MkDocs hook: the configuration page's tables, made from the settings classes.

`docs/configuration.md` holds the line `<!-- settings -->`; at build time this hook
puts there one table per settings class of the server (its own, the gateway's, each
pattern's), from the same classes the command line, `.env.example`, `server.json` and
`manifest.json` are checked against. A setting with a `description` is documented
without anyone writing a row.
"""

from __future__ import annotations

from typing import Any

from mkdocs.exceptions import PluginError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from council.core._settings import (
    env_name,
    flag_name,
    is_secret,
)
from council.server import settings_classes

PAGE = "configuration.md"
MARKER = "<!-- settings -->"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(
            f"docs/{PAGE} has no line {MARKER}, where the tables of settings go: "
            "put it back where the tables belong."
        )
    return markdown.replace(MARKER, settings_tables())


def settings_tables() -> str:
    """A heading and a table per settings class, in the order `--help` lists them."""
    sections = []
    for settings_class in settings_classes():
        rows = [
            "| Variable | Flag | Default | Meaning |",
            "|---|---|---|---|",
            *(
                row(settings_class, field, info)
                for field, info in settings_class.model_fields.items()
            ),
        ]
        sections.append(f"### {heading(settings_class)}\n\n" + "\n".join(rows))
    return "\n\n".join(sections)


def heading(settings_class: type[BaseSettings]) -> str:
    """The class's docstring, first sentence (as `--help` groups the flags)."""
    title = (settings_class.__doc__ or settings_class.__name__).strip()
    return title.split("\n")[0].rstrip(".")


def row(settings_class: type[BaseSettings], field: str, info: FieldInfo) -> str:
    env = env_name(settings_class, field)
    flag = "— (environment only)"
    if not is_secret(info.annotation):
        flag = f"`{flag_name(env)}`"
    meaning = (info.description or "").replace("|", "\\|")
    return f"| `{env}` | {flag} | {default(info)} | {meaning} |"


def default(info: FieldInfo) -> str:
    """The default as the environment spells it: `false`, `8000`; unset when None."""
    value = info.default
    if value is None:
        return "unset"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"
