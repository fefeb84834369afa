"""A local document corpus: a folder of Markdown, text and HTML, searchable with FTS5.

The index is an SQLite file in a cache directory, never inside the corpus, so a corpus
shipped in a read-only install (a wheel, `uvx`) works. It is built on first use and
brought up to date on every `refresh()`: files added, changed or removed since are
re-indexed. A source's id is its path relative to the corpus root. Files are opened
without following links, each folder on the way too, and checked as opened (a regular
file of at most `MAX_DOCUMENT_BYTES`): a symlink swapped in at any moment is skipped,
never followed. `read` serves only what was indexed, from the index.

    corpus = Corpus(Path("docs"), cache_dir=Path("/tmp/cache"))
    corpus.refresh()
    hits = corpus.search("heat pump efficiency", limit=3)
    text = corpus.read(hits[0].id).text
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from stat import S_ISREG

SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}
MAX_DOCUMENT_BYTES = 5_000_000
"""A larger file is left out of the index."""
_WORD = re.compile(r"\w+")
_SCHEMA = """
create table if not exists files (id text primary key, mtime_ns integer, size integer);
create virtual table if not exists documents
    using fts5(id unindexed, title, body, tokenize = 'porter unicode61');
"""


class SourceNotFoundError(LookupError):
    """No indexed source has that id (or it would lead outside the corpus)."""


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    location: str


@dataclass(frozen=True)
class Hit:
    source: Source
    snippet: str


@dataclass(frozen=True)
class Document:
    source: Source
    text: str


class Corpus:
    """A folder of documents and its full-text index."""

    def __init__(self, root: Path, *, cache_dir: Path) -> None:
        self.root = root.resolve()
        key = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        self.index_path = cache_dir / f"corpus-{key}.sqlite3"

    def refresh(self) -> int:
        """Bring the index up to date with the folder; returns how many files changed."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"the corpus folder {self.root} does not exist")
        on_disk = {
            self._source_id(path): path.lstat()
            for path in self._files()
            if path.suffix.lower() in SUFFIXES
        }
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.index_path)) as db, db:
            db.executescript(_SCHEMA)
            indexed = {
                row[0]: (row[1], row[2])
                for row in db.execute("select id, mtime_ns, size from files")
            }
            stale = [
                source_id
                for source_id, stat in on_disk.items()
                if indexed.get(source_id) != (stat.st_mtime_ns, stat.st_size)
            ]
            gone = [source_id for source_id in indexed if source_id not in on_disk]
            for source_id in stale + gone:
                db.execute("delete from files where id = ?", (source_id,))
                db.execute("delete from documents where id = ?", (source_id,))
            for source_id in stale:
                opened = self._open(source_id)
                if opened is None:  # not a regular file any more, or too large
                    continue
                raw, stat = opened
                title, body = extract(source_id, raw)
                db.execute(
                    "insert into files values (?, ?, ?)",
                    (source_id, stat.st_mtime_ns, stat.st_size),
                )
                db.execute(
                    "insert into documents values (?, ?, ?)", (source_id, title, body)
                )
        return len(stale) + len(gone)

    def _files(self) -> list[Path]:
        """Regular files under the root, through real folders only (no links)."""
        found = []
        for folder, folders, files in os.walk(self.root, followlinks=False):
            here = Path(folder)
            folders[:] = [name for name in folders if not (here / name).is_symlink()]
            found += [here / name for name in files if (here / name).is_file()]
        return [path for path in found if not path.is_symlink()]

    def _open(self, source_id: str) -> tuple[str, os.stat_result] | None:
        """The file's text and status, read from the file as opened, never through a
        link: every folder on the way and the file itself are opened `O_NOFOLLOW`."""
        *folders, name = source_id.split("/")
        directory = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for folder in folders:
                inner = os.open(
                    folder,
                    os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                    dir_fd=directory,
                )
                os.close(directory)
                directory = inner
            descriptor = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory
            )
        except OSError:  # a link, or gone: not indexed
            return None
        finally:
            os.close(directory)
        with os.fdopen(descriptor, "rb") as file:
            stat = os.fstat(file.fileno())
            if not S_ISREG(stat.st_mode) or stat.st_size > MAX_DOCUMENT_BYTES:
                return None
            raw = file.read(MAX_DOCUMENT_BYTES + 1)
        return raw.decode("utf-8", errors="replace"), stat

    def search(self, query: str, limit: int = 5) -> list[Hit]:
        """Best matches for any of the query's words, by BM25 rank."""
        words = _WORD.findall(query)
        if not words:
            return []
        # Quoted words, joined with OR: the query can never be FTS5 syntax.
        match = " OR ".join('"{}"'.format(word.replace('"', "")) for word in words)
        with closing(sqlite3.connect(self.index_path)) as db:
            rows = db.execute(
                "select id, title, snippet(documents, 2, '', '', ' … ', 24) "
                # A match in the title counts five times one in the body.
                "from documents where documents match ? "
                "order by bm25(documents, 0, 5.0, 1.0) limit ?",
                (match, limit),
            ).fetchall()
        return [Hit(self._source(i, t), snippet) for i, t, snippet in rows]

    def read(self, source_id: str) -> Document:
        """The full text of an indexed source, as it was indexed."""
        with closing(sqlite3.connect(self.index_path)) as db:
            row = db.execute(
                "select title, body from documents where id = ?", (source_id,)
            ).fetchone()
        if row is None:
            raise SourceNotFoundError(f"there is no source {source_id!r}")
        return Document(self._source(source_id, row[0]), row[1])

    def sources(self) -> list[Source]:
        with closing(sqlite3.connect(self.index_path)) as db:
            rows = db.execute("select id, title from documents order by id").fetchall()
        return [self._source(source_id, title) for source_id, title in rows]

    def _source(self, source_id: str, title: str) -> Source:
        return Source(source_id, title, str(self.root / source_id))

    def _source_id(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def extract(source_id: str, raw: str) -> tuple[str, str]:
    """A document's title and plain text."""
    stem = Path(source_id).stem
    if Path(source_id).suffix.lower() in {".html", ".htm"}:
        parser = _TextOfHTML()
        parser.feed(raw)
        text = re.sub(r"\n\s*\n+", "\n\n", "".join(parser.text)).strip()
        return (parser.title.strip() or stem), text
    heading = re.search(r"^#\s+(.+)$", raw, re.MULTILINE)
    return (heading.group(1).strip() if heading else stem), raw.strip()


class _TextOfHTML(HTMLParser):
    _SKIPPED = frozenset({"script", "style", "head"})
    _BLOCKS = frozenset(
        {"p", "div", "li", "h1", "h2", "h3", "h4", "br", "tr", "section"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.text: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._open.append(tag)
        if tag in self._BLOCKS:
            self.text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]
        if tag in self._BLOCKS:
            self.text.append("\n")

    def handle_data(self, data: str) -> None:
        if "title" in self._open:
            self.title += data
        elif not self._SKIPPED.intersection(self._open):
            self.text.append(data)
