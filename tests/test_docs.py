"""The README is a front page and the manual in ``docs/`` holds together: every relative link of
README.md and docs/*.md reaches an existing file (and heading, for a ``#anchor``), the README
stays within 200 lines and starts with the two set-up commands that CI runs, and it links every
page of the manual."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

COMMANDS = (
    "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e . && .venv/bin/kofn flow",
    "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e '.[test]' && .venv/bin/python -m pytest",
)

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of ``page`` (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(_prose(page.read_text()))]


def test_slug_follows_github():
    assert slug("Formal check of the stream control (`kofn prove`)") == "formal-check-of-the-stream-control-kofn-prove"
    assert slug("Sweeps on Dask distributed (`kofn/app/sweep.py`)") == "sweeps-on-dask-distributed-kofnappsweeppy"
    assert slug("The bank granularity's trade") == "the-bank-granularitys-trade"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    bad = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest}")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            bad.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not bad, f"{page.relative_to(REPO)}: " + "; ".join(bad)


def test_the_check_catches_a_broken_link(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\n## Two words\n\nsee [b](b.md), [here](#two-words), [gone](#three)\n")
    (tmp_path / "b.md").write_text("# B\n")
    assert links(tmp_path / "a.md") == ["b.md", "#two-words", "#three"]
    assert "two-words" in anchors(tmp_path / "a.md") and "three" not in anchors(tmp_path / "a.md")


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the manual belongs in docs/"
    assert lines[:5] == ["# kofn", "", "```sh", *COMMANDS], "the README starts with the two set-up commands"


def test_ci_runs_the_readmes_test_command():
    assert COMMANDS[1] in (REPO / ".ci" / "run").read_text()


def test_readme_links_every_page_of_the_manual():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in links(REPO / "README.md") if t.startswith("docs/")}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []
    assert (REPO / "docs" / "limitations.md").resolve() in linked
