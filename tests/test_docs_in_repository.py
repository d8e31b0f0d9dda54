"""Documentation lives in the repository: no file cites a design note that is not in it, and every
``docs/design.md §N`` citation names a section that exists."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# split so this file does not cite them; the second is the old way of citing a section of the note
OUTSIDE_NOTES = ("DESIGN" + ".md", "DESIGN" + " §", "reference-" + "behaviour.md", "platform-" + "facts.md")


def repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    return [REPO / name for name in listed if name and (REPO / name).is_file()]


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return ""


def test_no_file_cites_notes_outside_the_repository():
    found = [f"{path.relative_to(REPO)}: {note}" for path in repository_files()
             for note in OUTSIDE_NOTES if note in _text(path)]
    assert found == [], "move what the code needs into docs/design.md and cite that"


def test_design_citations_name_existing_sections():
    design = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\d+)\.", design, flags=re.M))
    items = {(s, i) for s in sections for i in range(1, 10)}  # numbered items inside a section: §2.4
    cited = [(path, m.group(1), m.group(2)) for path in repository_files()
             for m in re.finditer(r"docs/design\.md §(\d+)(?:\.(\d+))?", _text(path))]
    assert cited, "the checker found no citation at all"
    bad = [f"{p.relative_to(REPO)}: §{s}{'.' + i if i else ''}" for p, s, i in cited
           if s not in sections or (i and (s, int(i)) not in items)]
    assert bad == []
