"""MkDocs hook: links from this site to the repository's files outside `docs/`.

A page links to a file of the repository as GitHub reads it, relative to the page
(`../reference_servers/council/docs/eras.md`), so the link works there too. In the
built site it becomes that file on GitHub (`repo_url`), and a link to a file that does
not exist fails the build, as a broken link inside the site does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# An inline link's target, `](../PATH#anchor)`, or a reference's, `[name]: ../PATH`.
UPWARD = re.compile(
    r"(?P<lead>\]\(|^\[[^\]\n]+\]:[ \t]*)(?P<path>(?:\.\./)+[^)#\s]*)"
    r"(?P<anchor>#[^)\s]*)?",
    re.MULTILINE,
)


def on_page_markdown(markdown: str, page: Any, config: Any, **_: Any) -> str:
    page_dir = (DOCS / page.file.src_uri).parent

    def on_github(link: re.Match[str]) -> str:
        target = (page_dir / link["path"]).resolve()
        if target.is_relative_to(DOCS):
            return link[0]  # a page of this site: MkDocs checks it
        if not target.exists():
            raise PluginError(
                f"docs/{page.file.src_uri} links to {link['path']}, which is not in "
                "the repository (after a template change, `nox -s regenerate` "
                "renders the reference servers' files)"
            )
        kind = "tree" if target.is_dir() else "blob"
        path = target.relative_to(ROOT).as_posix()
        url = f"{config.repo_url.rstrip('/')}/{kind}/main/{path}{link['anchor'] or ''}"
        return link["lead"] + url

    return UPWARD.sub(on_github, markdown)
