"""An HTML page as the run report's tests look at it (html.parser from the standard library)."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser


class Page(HTMLParser):
    """A parsed page: how many of each tag, every attribute (with its tag), the text, and the
    cells of each table row that names a stage (``data-stage``) or a drop reason (``data-reason``)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.rows: list[tuple[dict[str, str], list[dict[str, str]]]] = []  # (row attributes, its cells' attributes)
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        given = {name: value or "" for name, value in attrs}
        self.attributes += [(tag, name, value) for name, value in given.items()]
        if tag == "tr":
            self.rows.append((given, []))
        elif tag == "td" and self.rows:
            self.rows[-1][1].append(given)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def values(self, name: str) -> list[str]:
        """Every value of attribute ``name``, in page order."""
        return [v for _, n, v in self.attributes if n == name]
