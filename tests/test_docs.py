"""README documents the whole surface: every statement keyword, option and model name."""

from __future__ import annotations

from pathlib import Path

import pytest

from thanosql.options import BUILD_ALGORITHMS, OPTIONS
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


@pytest.mark.parametrize(
    "statement, option",
    sorted(
        (statement, option)
        for statement, specs in OPTIONS.items()
        for option in specs
        if statement in ("copy", "convert", "search", "print", "get_model", "upload")
    ),
)
def test_the_options_users_write_most_are_documented(statement, option):
    assert option in README, f"option {option} of {statement} is not in README.md"
