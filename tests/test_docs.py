"""The README stays a short user's document, and the links of the documentation resolve."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_under_15000_characters():
    assert len((ROOT / "README.md").read_text(encoding="utf-8")) < 15_000


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_pictures_exist(document):
    text = document.read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in LINK.findall(text) if "://" not in t and t[0] != "#"]
    missing = [t for t in targets if not (document.parent / t).exists()]
    assert not missing, f"{document.relative_to(ROOT)} links to missing {missing}"
