"""The user docs stand alone: links stay inside the repo, and config examples load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")
TOML_BLOCK = re.compile(r"```toml\n(.*?)```", re.DOTALL)


def anchors(doc: Path) -> set[str]:
    """The heading anchors of a Markdown file, as GitHub makes them."""
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.DOTALL)
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_point_inside_the_repo_and_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text and "DESIGN.md" not in text
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = doc.parent / path if path else doc
        assert linked.exists(), f"{doc.name} links to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{doc.name} links to a missing heading: {target}"


def test_every_source_block_in_docs_sources_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = ("FB_PAGE_TOKEN", "DISCOURSE_API_KEY", "FLARUM_API_KEY", "BLUESKY_APP_PASSWORD")
    for name in (*secrets, "MASTODON_ACCESS_TOKEN"):
        monkeypatch.setenv(name, "secret-value")
    blocks = TOML_BLOCK.findall((ROOT / "docs" / "sources.md").read_text(encoding="utf-8"))
    # One block per type: the set of types below says which.
    types = set()
    for number, block in enumerate(blocks):
        path = tmp_path / f"{number}.toml"
        path.write_text(block, encoding="utf-8")
        (source,) = load_config(path).sources
        types.add(source.type)
    assert len(types) == len(blocks)
    assert {"facebook_page", "messenger", "discourse", "phpbb_atom", "flarum"} <= types
