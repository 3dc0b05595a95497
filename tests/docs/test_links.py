"""Every relative link in README.md and docs/*.md resolves inside the repository, and the
front door stays a front door (short, no pointer outside the repository)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and ![alt](target); a target ends at whitespace or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
# Pages other branches are writing at the same time; a link to one is checked once it exists.
# Remove this set after they are merged.
def links(text: str):
    return LINK.findall(CODE.sub("", text))


def anchors(text: str) -> set:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for heading in re.findall(r"^#+\s+(.*)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_links_finds_links_and_skips_code():
    text = "see [a](docs/a.md) and ![img](x.png#y) but `[no](nope.md)` and\n```\n[no](nope2.md)\n```\n"
    assert links(text) == ["docs/a.md", "x.png#y"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(page):
    text = page.read_text()
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}: link {target}"
        assert resolved.is_relative_to(ROOT), f"{where} points outside the repository"
        assert resolved.exists(), f"{where}: {resolved.relative_to(ROOT)} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved.read_text()), f"{where}: no heading #{anchor} in {resolved.name}"


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 13_000, "README.md is the front door (about 12 KB): move reference to docs/"
    assert "../shared" not in text and not any("../shared" in p.read_text() for p in PAGES)
    for command in ("bash tools/install.sh", ".venv/bin/python -m pytest -q"):  # what .ci/run calls
        assert command in text


def test_every_docs_page_is_in_the_readmes_table_of_contents_and_says_what_it_is_for():
    readme = (ROOT / "README.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in readme, f"docs/{page.name} is missing from README.md's table of contents"
        lines = [line for line in page.read_text().splitlines() if line.strip()]
        assert lines[0].startswith("# ") and not lines[1].startswith(("#", "|", "```")), (
            f"docs/{page.name}: start with a title and one line saying what the page is for")
