"""The planner: nested statements become steps, plain SQL keeps its text, options are checked."""

from __future__ import annotations

import pytest

from thanosql import PlanError, parse
from thanosql.planner import plan


def plan_of(text: str):
    return plan(parse(text)[0])


def test_plain_sql_is_planned_as_itself():
    the_plan = plan_of("SELECT a, b FROM t WHERE a > 1 ORDER BY b")
    assert the_plan.steps == ()
    assert the_plan.sql == "SELECT a, b FROM t WHERE a > 1 ORDER BY b"


def test_a_nested_statement_is_replaced_by_a_query_over_its_result():
    the_plan = plan_of(
        "SELECT image_path FROM (SEARCH IMAGE USING m OPTIONS (search_by='text', search_input='x') "
        "AS SELECT * FROM t WHERE y = 1) LIMIT 5"
    )
    (step,) = the_plan.steps
    assert step.source == "SELECT * FROM t WHERE y = 1"
    assert step.output == "__thanosql_result_1"
    assert the_plan.sql == "SELECT image_path FROM (SELECT * FROM __thanosql_result_1) LIMIT 5"


def test_statements_nested_in_sources_run_innermost_first():
    the_plan = plan_of(
        "PRINT IMAGE AS (SELECT image_path FROM (SEARCH IMAGE USING m OPTIONS (search_by='text', "
        "search_input='x') AS SELECT * FROM (CONVERT USING m AS SELECT * FROM t)))"
    )
    kinds = [type(step.statement).__name__ for step in the_plan.steps]
    assert kinds == ["Convert", "Search", "Print"]
    convert, search, print_ = the_plan.steps
    assert search.source == "SELECT * FROM (SELECT * FROM __thanosql_result_2)"
    assert print_.source == "SELECT image_path FROM (SELECT * FROM __thanosql_result_1)"
    assert print_.output is None and the_plan.sql is None


def test_an_extension_statement_as_the_source_of_another_reads_its_result():
    the_plan = plan_of(
        "CONVERT USING m AS SEARCH IMAGE USING m OPTIONS (search_by='text', search_input='x') AS SELECT * FROM t"
    )
    search, convert = the_plan.steps
    assert convert.source == f"SELECT * FROM {search.output}"


def test_two_nested_statements_in_one_query_get_their_own_results():
    the_plan = plan_of("SELECT * FROM (LIST TABLE) a JOIN (LIST MODEL) b ON true")
    assert the_plan.sql == (
        "SELECT * FROM (SELECT * FROM __thanosql_result_2) a JOIN (SELECT * FROM __thanosql_result_1) b ON true"
    )


def test_defaults_are_filled_in():
    (step,) = plan_of("CONVERT USING m AS SELECT * FROM t").steps
    assert step.options["image_col"] == "image_path"
    assert step.options["result_col"] == "convert_result"
    assert step.options["convert_type"] == "image"


def test_column_name_is_the_older_spelling_of_result_col():
    (step,) = plan_of('CONVERT USING m OPTIONS (column_name="emb") AS SELECT * FROM t').steps
    assert step.options["result_col"] == "emb"


def test_giving_both_spellings_of_an_option_is_an_error():
    with pytest.raises(PlanError, match="given twice"):
        plan_of("CONVERT USING m OPTIONS (column_name='a', result_col='b') AS SELECT * FROM t")


def test_copy_overwrite_means_if_exists_replace():
    (step,) = plan_of('COPY t OPTIONS (overwrite=True) FROM "a.csv"').steps
    assert step.options["if_exists"] == "replace"
    (step,) = plan_of("COPY t OPTIONS (overwrite=False) FROM 'a.csv'").steps
    assert step.options["if_exists"] == "fail"


def test_get_model_as_alias_means_model_name():
    (step,) = plan_of("GET THANOSQL MODEL clip OPTIONS (overwrite=True) AS tutorial_search_clip").steps
    assert step.options["model_name"] == "tutorial_search_clip"


def test_inline_search_input_is_unsorted_and_keeps_every_row():
    (step,) = plan_of("SEARCH IMAGE image='q.jpg' USING m OPTIONS (emb_col='e') AS SELECT * FROM t").steps
    assert (step.options["search_by"], step.options["search_input"]) == ("image", "q.jpg")
    assert step.sort is False and step.options["top_k"] is None


def test_search_by_form_is_sorted_with_top_k_1000_by_default():
    (step,) = plan_of("SEARCH IMAGE USING m OPTIONS (search_by='text', search_input='x') AS SELECT * FROM t").steps
    assert step.sort is True and step.options["top_k"] == 1000


def test_search_input_type_is_the_older_spelling_of_search_by():
    (step,) = plan_of(
        "SEARCH IMAGE USING m OPTIONS (search_input_type='text', search_input='x') AS SELECT * FROM t"
    ).steps
    assert step.options["search_by"] == "text"


def test_an_unknown_option_names_the_nearest_and_lists_the_valid_ones():
    with pytest.raises(PlanError) as caught:
        plan_of("CONVERT USING m OPTIONS (image_column='p') AS SELECT * FROM t")
    error = caught.value
    assert error.message == "unknown option 'image_column' for CONVERT"
    assert error.hint.startswith("did you mean 'image_col'?")
    assert "result_col" in error.hint


def test_an_option_of_the_wrong_type_says_what_it_must_be():
    with pytest.raises(PlanError, match="option 'batch_size' must be an integer, not a string '16'"):
        plan_of("CONVERT USING m OPTIONS (batch_size='16') AS SELECT * FROM t")


def test_an_option_outside_its_choices_lists_them():
    with pytest.raises(PlanError) as caught:
        plan_of("COPY t OPTIONS (if_exists='replce') FROM 'a.csv'")
    assert "did you mean 'replace'?" in caught.value.hint


def test_an_unknown_build_algorithm_lists_the_known_ones():
    with pytest.raises(PlanError) as caught:
        plan_of("BUILD MODEL m USING SimCLRR AS SELECT * FROM t")
    assert "did you mean 'SimCLR'?" in caught.value.hint


def test_algorithm_names_are_case_insensitive():
    (step,) = plan_of("BUILD MODEL m USING simclr OPTIONS (max_epochs=1) AS SELECT * FROM t").steps
    assert step.options["max_epochs"] == 1


def test_plan_errors_point_at_the_option_in_the_cell():
    text = "CONVERT USING m\nOPTIONS (image_col='a', nope=1)\nAS SELECT * FROM t"
    with pytest.raises(PlanError) as caught:
        plan(parse(text)[0])
    error = caught.value
    error.source = text
    assert (error.line, error.column) == (2, 25)
    assert error.render().splitlines()[2] == " " * 24 + "^" * 6


def test_a_step_carries_the_options_written_and_where_as_fields():
    text = "CONVERT USING m OPTIONS (column_name='emb', batch_size=8) AS SELECT * FROM t"
    (step,) = plan_of(text).steps
    assert step.given == frozenset({"result_col", "batch_size"})
    assert set(step.spans) == {"result_col", "batch_size"}
    assert text[step.spans["batch_size"].start : step.spans["batch_size"].end] == "batch_size=8"
    # Nothing but options in the options dict: no _given, _spans or sort smuggled in.
    assert all(not name.startswith("_") for name in step.options) and "sort" not in step.options


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "BUILD MODEL m USING SimCLR OPTIONS (max_epochs=0) AS SELECT * FROM t",
            "max_epochs must be at least 1, not 0",
        ),
        ("BUILD MODEL m USING CLIP OPTIONS (batch_size=1) AS SELECT * FROM t", "batch_size must be at least 2, not 1"),
        (
            "FIT MODEL n USING m OPTIONS (min_scale=1.5) AS SELECT * FROM t",
            "min_scale must be above 0 and at most 1, not 1.5",
        ),
        ("BUILD MODEL m USING SimCLR OPTIONS (temperature=0) AS SELECT * FROM t", "temperature must be above 0, not 0"),
        ("CONVERT USING m OPTIONS (num_workers=-1) AS SELECT * FROM t", "num_workers must be at least 0, not -1"),
        (
            "SEARCH IMAGE USING m OPTIONS (search_by='text', search_input='x', top_k=0) AS SELECT * FROM t",
            "top_k must be a positive number of rows, not 0",
        ),
        ("PRINT IMAGE OPTIONS (limit=-1) AS SELECT * FROM t", "limit must be 0 or more rows, not -1"),
        (
            "UPLOAD MODEL m OPTIONS (framework='pytorch', input_size=-3) FROM 'm.pt'",
            "input_size must be a positive number of pixels",
        ),
    ],
)
def test_numbers_out_of_range_are_refused_by_the_planner_before_any_handler_runs(text, message):
    # plan() alone: no session, no database, no handler.
    with pytest.raises(PlanError) as caught:
        plan_of(text)
    assert caught.value.message == message
    option = message.split()[0]
    span = caught.value.span
    assert text[span.start : span.end].startswith(option + "=")


def test_top_k_out_of_range_keeps_its_hint():
    with pytest.raises(PlanError) as caught:
        plan_of("SEARCH TEXT USING m OPTIONS (search_by='text', search_input='x', top_k=-2) AS SELECT * FROM t")
    assert caught.value.hint == "top_k=None keeps every row"


def test_numbers_in_range_and_none_pass_the_planner():
    (step,) = plan_of("SEARCH IMAGE USING m OPTIONS (search_by='text', search_input='x', top_k=None) AS SELECT 1").steps
    assert step.options["top_k"] is None
    (step,) = plan_of("BUILD MODEL m USING SimCLR OPTIONS (rotation=180, min_scale=1, num_workers=0) AS SELECT 1").steps
    assert (step.options["rotation"], step.options["min_scale"], step.options["num_workers"]) == (180, 1, 0)
