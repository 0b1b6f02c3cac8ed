"""Read the fixture files in tests/fixtures (sqlglot's fixture idea, in our own small format).

statements.sql and errors.sql: blocks separated by a line of ten or more dashes. A block opens with
`-- description` and `# key: value` lines, then the input exactly as written, a line `=>`, and the
expected output (a block without `=>` is a comment). passthrough.sql: one statement per line;
`--` lines are comments, `# key: value` lines set metadata for the next statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Case:
    input: str
    expected: str
    line: int  # where the block starts in its file
    description: str = ""
    meta: dict[str, str] = field(default_factory=dict)


def _is_separator(line: str) -> bool:
    return len(line) >= 10 and line.strip("-") == ""


def load_cases(name: str) -> list[Case]:
    """Every block of a statements.sql-style file."""
    cases, block, first = [], [], 1
    lines = (FIXTURES / name).read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines + ["-" * 10], start=1):
        if not _is_separator(line):
            block.append(line)
            continue
        if "=>" in block:  # a block without one is only comments (the file's header)
            cases.append(_read_block(block, first))
        block, first = [], number + 1
    return cases


def _read_block(block: list[str], first: int) -> Case:
    case = Case(input="", expected="", line=first)
    head = 0
    while head < len(block) and (block[head].startswith(("-- ", "# ")) or not block[head].strip()):
        if block[head].startswith("-- "):
            case.description = (case.description + " " + block[head][3:]).strip()
        elif block[head].startswith("# "):
            key, _, value = block[head][2:].partition(":")
            case.meta[key.strip()] = value.strip()
        head += 1
    arrow = block.index("=>", head)
    case.input = "\n".join(block[head:arrow])
    case.expected = "\n".join(block[arrow + 1 :]).strip("\n")
    return case


def load_lines(name: str) -> list[Case]:
    """Every statement of a passthrough.sql-style file (expected = input)."""
    cases, meta = [], {}
    lines = (FIXTURES / name).read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if line.startswith("# "):
            key, _, value = line[2:].partition(":")
            meta[key.strip()] = value.strip()
        elif line.strip() and not line.startswith("--"):
            cases.append(Case(input=line, expected=line, line=number, meta=meta))
            meta = {}
    return cases
