"""README documents the whole surface: every statement keyword, option and model name."""

from __future__ import annotations

from pathlib import Path

import pytest

from thanosql.options import BUILD_ALGORITHMS, OPTIONS, reference_markdown
from thanosql.parser import STATEMENT_KEYWORDS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("keyword", STATEMENT_KEYWORDS)
def test_every_statement_keyword_is_documented(keyword):
    assert f"`{keyword}" in README or f" {keyword} " in README


@pytest.mark.parametrize("algorithm", sorted(BUILD_ALGORITHMS))
def test_every_build_algorithm_is_documented(algorithm):
    assert algorithm in README.lower()


def test_every_pre_built_model_name_is_documented():
    from thanosql.models.catalog import list_pretrained

    names = [row["name"] for row in list_pretrained()]
    assert names, "the catalogue lists no model"
    missing = [name for name in names if f"`{name}`" not in README]
    assert not missing


def test_the_options_reference_in_readme_is_the_one_the_code_makes():
    start, end = "<!-- options:start -->\n", "<!-- options:end -->"
    assert start in README and end in README
    documented = README.split(start, 1)[1].split(end, 1)[0]
    assert documented.strip() == reference_markdown().strip(), (
        "README's options reference is stale: paste the output of "
        "`python -c 'from thanosql.options import reference_markdown; print(reference_markdown())'`"
    )


def test_every_option_has_a_meaning_in_the_reference():
    undocumented = [
        f"{statement}.{name}"
        for statement, specs in OPTIONS.items()
        for name, spec in specs.items()
        if not spec.doc and not spec.choices
    ]
    assert not undocumented
