"""Every ```python block in docs/ runs as written.

Each block runs as its own script in a fresh process, in an empty temporary directory
(also its ``TMPDIR``), so blocks share no state and whatever they write (for
instance ``./pyworkflow_data``) stays out of the repository. A block whose first line
is ``# doctest: skip-run`` is a fragment: it is only compiled.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIP_RUN = "# doctest: skip-run"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
REQUIRED_PAGES = [
    "quickstart.md",
    "concepts/workflows.md",
    "concepts/steps.md",
    "concepts/events.md",
    "concepts/sleep.md",
    "concepts/hooks.md",
    "concepts/cancellation.md",
    "concepts/child-workflows.md",
    "concepts/continue-as-new.md",
    "concepts/schedules.md",
    "concepts/fault-tolerance.md",
]


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str

    @property
    def skip_run(self) -> bool:
        return self.code.lstrip().startswith(SKIP_RUN)


def collect_blocks() -> list[Block]:
    blocks = []
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            page = path.relative_to(DOCS).as_posix()
            blocks.append(Block(page, line, match.group(1)))
    return blocks


BLOCKS = collect_blocks()


def test_required_pages_have_code() -> None:
    pages = {block.page for block in BLOCKS}
    for page in REQUIRED_PAGES:
        assert (DOCS / page).is_file(), f"docs/{page} is missing"
        assert page in pages, f"docs/{page} has no ```python block"


def test_fragments_are_rare() -> None:
    skipped = [b for b in BLOCKS if b.skip_run]
    assert len(skipped) <= len(BLOCKS) // 4, [f"{b.page}:{b.line}" for b in skipped]


@pytest.mark.timeout(90)  # the subprocess timeout (60 s) fires first, with its output
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.page}:{b.line}" for b in BLOCKS])
def test_doc_block(block: Block, tmp_path: Path) -> None:
    where = f"docs/{block.page}, block at line {block.line}"
    if block.skip_run:
        compile(block.code, where, "exec")
        return
    script = tmp_path / "block.py"
    script.write_text(block.code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (
        f"{where} exited with {done.returncode}\n--- stdout\n{done.stdout}\n"
        f"--- stderr\n{done.stderr}"
    )
