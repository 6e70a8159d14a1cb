"""Readable text, links and tables from HTML, as Markdown, with the standard library's parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

SKIP = {"script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "head"}
BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "br",
    "tr",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "form",
    "figure",
    "figcaption",
    "hr",
    "dl",
    "dt",
    "dd",
}
HEADINGS = {"h1": "# ", "h2": "## ", "h3": "### ", "h4": "#### ", "h5": "##### ", "h6": "###### "}


@dataclass
class Page:
    title: str = ""
    text: str = ""
    links: list[dict[str, str]] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)
    scripts: int = 0

    def markdown(self, url: str, max_chars: int) -> str:
        parts = [f"# {self.title or url}", f"Source: {url}", "", self.text]
        for table in self.tables:
            parts += ["", _table_markdown(table)]
        if self.links:
            parts += ["", "## Links"] + [f"- [{link['text'] or link['url']}]({link['url']})" for link in self.links]
        text = "\n".join(parts).strip()
        return text if len(text) <= max_chars else text[:max_chars] + "\n\n[truncated]"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table_markdown(rows: list[list[str]]) -> str:
    width = max(len(r) for r in rows)
    padded = [[_cell(c) for c in r] + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(padded[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(r) + " |" for r in padded[1:]]
    return "\n".join(lines)


class _Parser(HTMLParser):
    def __init__(self, base_url: str, max_links: int) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.max_links = max_links
        self.page = Page()
        self.out: list[str] = []
        self.skip = 0
        self.in_title = False
        self.link: dict[str, str] | None = None
        self.table: list[list[str]] | None = None
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.page.scripts += 1
        if tag == "title":
            self.in_title = True
        if tag in SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        if tag in HEADINGS:
            self.out.append("\n\n" + HEADINGS[tag])
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in BLOCK:
            self.out.append("\n")
        if tag == "a":
            href = dict(attrs).get("href") or ""
            url = urljoin(self.base_url, href)
            if urlsplit(url).scheme in ("http", "https"):
                self.link = {"url": url, "text": ""}
        elif tag == "table":
            self.table = []
        elif tag == "tr" and self.table is not None:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag == "a" and self.link is not None:
            self.link["text"] = " ".join(self.link["text"].split())
            if len(self.page.links) < self.max_links and self.link not in self.page.links:
                self.page.links.append(self.link)
            self.link = None
        elif tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.row is not None and self.table is not None:
            if self.row:
                self.table.append(self.row)
            self.row = None
        elif tag == "table" and self.table is not None:
            if self.table:
                self.page.tables.append(self.table)
            self.table = None
        if tag in BLOCK or tag in HEADINGS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.page.title += data
            return
        if self.skip:
            return
        if self.link is not None:
            self.link["text"] += data
        if self.cell is not None:
            self.cell.append(data)
            return  # table text goes to the Markdown table, not the prose
        self.out.append(data)


def extract(html: str, base_url: str, max_links: int = 100) -> Page:
    """Parse `html` (from `base_url`) into title, prose, links and tables."""
    parser = _Parser(base_url, max_links)
    parser.feed(html)
    parser.close()
    page = parser.page
    page.title = " ".join(page.title.split())
    raw = "".join(parser.out)
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in raw.split("\n")]
    page.text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return page
