"""README documents the whole surface: every statement keyword, option and model name."""

from __future__ import annotations

from pathlib import Path

import pytest

from thanosql import nodes
from thanosql.nodes import BUILD_ALGORITHMS, OPTIONS
from thanosql.options import reference_markdown
from thanosql.parser import STATEMENT_KEYWORDS, TABLE_KEYWORDS, Parser

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


# ---------------------------------------------------------------------- the statement registry


@pytest.mark.parametrize("record", nodes.STATEMENTS, ids=lambda record: record.node.__name__)
def test_every_statement_has_a_handler_or_says_it_is_not_supported(record):
    import importlib

    assert (record.handler is None) != (record.unsupported is None)
    if record.handler is not None:
        module, function = record.handler.split(":")
        assert callable(getattr(importlib.import_module(module), function))
    assert callable(getattr(Parser, record.parse))
    assert record.keyword in README or record.unsupported


def test_the_parsers_keyword_tables_come_from_the_statement_registry():
    records = nodes.STATEMENTS
    assert {record.keyword: record.parse for record in records} == Parser.STATEMENT_PARSERS
    assert tuple(dict.fromkeys(record.keyword for record in records)) == STATEMENT_KEYWORDS
    assert tuple(dict.fromkeys(record.keyword for record in records if record.rows)) == TABLE_KEYWORDS
    assert {"TRUE", "FALSE", "NONE"}.union(*(record.keywords for record in records)) == Parser.KEYWORDS
    assert {r.keyword: r.second_words for r in records if r.second_words is not None} == Parser.SECOND_WORDS
    assert tuple(record.node for record in records if record.rows) == nodes.TABLE_STATEMENTS


def test_statements_that_share_a_keyword_are_parsed_alike():
    by_keyword = {}
    for record in nodes.STATEMENTS:
        by_keyword.setdefault(record.keyword, set()).add((record.parse, record.second_words))
    assert all(len(forms) == 1 for forms in by_keyword.values())


def test_every_node_class_has_one_record():
    import dataclasses
    import typing

    statements = set(typing.get_args(nodes.Statement)) - {nodes.PassThrough}
    assert statements == {record.node for record in nodes.STATEMENTS}
    assert len(nodes.STATEMENTS) == len(statements)
    parts = {nodes.Option, nodes.Nested, nodes.PassThrough, nodes.InlineInput, nodes.OptionTable, nodes.StatementRecord}
    defined = {
        value
        for value in vars(nodes).values()
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == nodes.__name__
    }
    assert defined - parts == statements
