"""COPY: files (CSV, Parquet, JSON, pickle), folders of images, JSON records in the statement;
if_exists and its legacy spelling; a failed replace leaves the old table intact."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import Image

from thanosql.errors import DatasetError, ExecutionError, PlanError


def _csv(workspace, name="people.csv", text="name,age\nann,31\nbob,42\n"):
    path = workspace / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(session, table):
    return session.execute(f"SELECT * FROM {table} ORDER BY ALL").to_dict("records")


# ------------------------------------------------------------------------- files


def test_copy_makes_a_table_from_a_csv_file_relative_to_the_workspace(session, workspace, notices):
    _csv(workspace)

    assert session.execute("COPY people FROM 'people.csv'") is None

    assert _rows(session, "people") == [{"name": "ann", "age": 31}, {"name": "bob", "age": 42}]
    assert notices == ["Success"]


def test_copy_reads_an_absolute_path_and_a_double_quoted_one(session, tmp_path):
    path = _csv(tmp_path, "elsewhere.csv")

    session.execute(f'COPY people FROM "{path}"')

    assert len(_rows(session, "people")) == 2


def test_copy_reads_parquet_json_and_json_lines(session, workspace):
    frame = pd.DataFrame({"id": [1, 2], "word": ["a", "b"]})
    frame.to_parquet(workspace / "t.parquet")
    (workspace / "t.json").write_text(frame.to_json(orient="records"))
    (workspace / "t.jsonl").write_text(frame.to_json(orient="records", lines=True))

    for table, name in (("p", "t.parquet"), ("j", "t.json"), ("l", "t.jsonl")):
        session.execute(f"COPY {table} FROM '{name}'")
        assert _rows(session, table) == [{"id": 1, "word": "a"}, {"id": 2, "word": "b"}], name


def test_copy_reads_a_pickled_dataframe(session, workspace):
    pd.DataFrame({"x": [1.5, 2.5], "tag": ["u", "v"]}).to_pickle(workspace / "frame.pkl")

    session.execute("COPY pickled FROM 'frame.pkl'")

    assert _rows(session, "pickled") == [{"x": 1.5, "tag": "u"}, {"x": 2.5, "tag": "v"}]


def test_a_pickled_frame_with_arrays_in_its_cells_becomes_list_columns(session, workspace):
    import numpy as np

    pd.DataFrame({"image": [np.zeros((2, 2)), np.ones((2, 2))]}).to_pickle(workspace / "arrays.pickle")

    session.execute("COPY arrays FROM 'arrays.pickle'")

    assert session.execute("SELECT image FROM arrays")["image"].map(lambda v: np.asarray(v.tolist()).tolist()).tolist() == [
        [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]


def test_the_format_option_reads_a_file_whatever_its_extension(session, workspace):
    _csv(workspace, "people.data")

    session.execute("COPY people OPTIONS (format='csv') FROM 'people.data'")

    assert len(_rows(session, "people")) == 2


def test_an_unknown_extension_says_which_formats_copy_reads(session, workspace):
    _csv(workspace, "people.data")

    with pytest.raises(DatasetError) as caught:
        session.execute("COPY people FROM 'people.data'")

    assert "people.data" in caught.value.message and "format=" in caught.value.hint


def test_a_csv_with_a_late_value_of_another_type_is_read_in_full(session, workspace):
    lines = ["n"] + [str(i) for i in range(30000)] + ["not a number"]
    _csv(workspace, "late.csv", "\n".join(lines) + "\n")

    session.execute("COPY late FROM 'late.csv'")

    assert session.execute("SELECT count(*) AS c, max(n) AS m FROM late WHERE n = 'not a number'")["c"][0] == 1


def test_copy_of_a_25_thousand_row_csv_keeps_every_row(session, workspace):
    rows = "\n".join(f"id{i},thanosql-dataset/u/{i}.jpg,{i % 7}" for i in range(25000))
    _csv(workspace, "big.csv", "photo_id,image_path,k\n" + rows + "\n")

    session.execute("COPY big FROM 'big.csv'")

    assert session.execute("SELECT count(*) AS n, sum(k) AS s FROM big").to_dict("records") == [
        {"n": 25000, "s": sum(i % 7 for i in range(25000))}]


def test_a_path_is_passed_to_duckdb_as_a_value_not_pasted_into_sql(session, workspace):
    _csv(workspace, "it's here; DROP TABLE x.csv")

    session.execute("COPY odd FROM \"it's here; DROP TABLE x.csv\"")

    assert len(_rows(session, "odd")) == 2


def test_a_missing_file_names_the_resolved_path_and_the_workspace(session, workspace):
    with pytest.raises(DatasetError) as caught:
        session.execute("COPY people FROM 'nowhere/people.csv'")

    assert str(workspace / "nowhere" / "people.csv") in caught.value.message
    assert str(workspace) in caught.value.hint
    assert caught.value.line == 1


def test_a_missing_dataset_file_says_to_get_the_dataset_first(session):
    with pytest.raises(DatasetError) as caught:
        session.execute("COPY mnist_test FROM 'thanosql-dataset/mnist_data/mnist_test.csv'")

    assert "GET THANOSQL DATASET mnist_data" in caught.value.hint


def test_excel_without_its_reader_package_is_a_clear_error(session, workspace):
    pytest.importorskip("pandas")
    try:
        import openpyxl  # noqa: F401

        pytest.skip("openpyxl is installed here")
    except ImportError:
        pass
    (workspace / "sheet.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")

    with pytest.raises(DatasetError) as caught:
        session.execute("COPY sheet FROM 'sheet.xlsx'")

    assert "openpyxl" in caught.value.message and "pip install openpyxl" in caught.value.hint


# ------------------------------------------------------------------------- if_exists


def test_copy_into_an_existing_table_fails_by_default_with_a_hint(session, workspace):
    _csv(workspace)
    session.execute("COPY people FROM 'people.csv'")

    with pytest.raises(PlanError) as caught:
        session.execute("COPY people FROM 'people.csv'")

    assert "already exists" in caught.value.message and "if_exists='replace'" in caught.value.hint
    assert len(_rows(session, "people")) == 2


def test_if_exists_replace_and_append(session, workspace):
    _csv(workspace)
    _csv(workspace, "more.csv", "name,age\ncid,50\n")
    session.execute("COPY people FROM 'people.csv'")

    session.execute("COPY people OPTIONS (if_exists='append') FROM 'more.csv'")
    assert [r["name"] for r in _rows(session, "people")] == ["ann", "bob", "cid"]

    session.execute("COPY people OPTIONS (if_exists='replace') FROM 'more.csv'")
    assert _rows(session, "people") == [{"name": "cid", "age": 50}]


def test_the_legacy_overwrite_option_replaces_the_table(session, workspace):
    _csv(workspace)
    _csv(workspace, "more.csv", "name,age\ncid,50\n")
    session.execute("COPY people FROM 'people.csv'")

    session.execute('COPY people OPTIONS (overwrite=True) FROM "more.csv"')

    assert _rows(session, "people") == [{"name": "cid", "age": 50}]


def test_a_failed_replace_leaves_the_old_table_intact(session, workspace):
    _csv(workspace)
    session.execute("COPY people FROM 'people.csv'")
    (workspace / "broken.parquet").write_bytes(b"this is not parquet")

    with pytest.raises(DatasetError, match="cannot read Parquet file"):
        session.execute("COPY people OPTIONS (if_exists='replace') FROM 'broken.parquet'")

    assert _rows(session, "people") == [{"name": "ann", "age": 31}, {"name": "bob", "age": 42}]


def test_a_failed_append_leaves_the_old_table_intact(session, workspace):
    _csv(workspace)
    _csv(workspace, "strange.csv", "name,age\ncid,not a number\n")
    session.execute("COPY people FROM 'people.csv'")

    with pytest.raises(ExecutionError):
        session.execute("COPY people OPTIONS (if_exists='append') FROM 'strange.csv'")

    assert _rows(session, "people") == [{"name": "ann", "age": 31}, {"name": "bob", "age": 42}]


def test_copy_and_select_in_one_cell(session, workspace):
    _csv(workspace)

    frame = session.execute("COPY people FROM 'people.csv'; SELECT max(age) AS oldest FROM people")

    assert frame["oldest"].tolist() == [42]


# ------------------------------------------------------------------------- JSON text


def test_json_records_written_in_the_statement_become_a_table(session):
    frame = pd.DataFrame({"image": ["a.jpg", "b.jpg"], "score": [0.5, None]})
    records = frame.to_json(orient="records")

    session.execute(f"COPY pasted FROM '{records}'")

    assert session.execute("SELECT * FROM pasted").to_dict("records")[0] == {"image": "a.jpg", "score": 0.5}
    assert session.execute("SELECT count(*) AS n FROM pasted WHERE score IS NULL")["n"][0] == 1


def test_json_text_in_the_default_to_json_orient_is_read_too(session):
    text = pd.DataFrame({"a": [1, 2]}).to_json()

    session.execute(f"COPY columns_orient FROM '{text}'")

    assert sorted(session.execute("SELECT a FROM columns_orient")["a"]) == [1, 2]


def test_broken_json_text_is_a_clear_error(session):
    with pytest.raises(DatasetError, match="not valid JSON"):
        session.execute("""COPY broken FROM '[{"a": 1},'""")


def test_json_text_that_is_not_records_is_refused(session):
    with pytest.raises(DatasetError, match="list of records"):
        session.execute(f"COPY numbers FROM '{json.dumps([1, 2, 3])}'")


# ------------------------------------------------------------------------- folders


def _images(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), "red").save(path)


def test_a_folder_of_images_becomes_a_table_of_paths_and_file_names(session, workspace):
    _images(workspace / "pics", ["b.png", "a.jpg"])
    (workspace / "pics" / "notes.txt").write_text("not an image")
    (workspace / "pics" / ".hidden.jpg").write_bytes(b"")

    session.execute("COPY pics FROM 'pics/'")

    assert session.execute("SELECT * FROM pics").to_dict("records") == [
        {"image_path": "pics/a.jpg", "filename": "a.jpg"},
        {"image_path": "pics/b.png", "filename": "b.png"},
    ]


def test_images_in_class_folders_get_the_folder_name_as_label(session, workspace):
    _images(workspace / "diet", ["apple pie/1.jpg", "apple pie/2.jpg", "kimchi/3.jpg"])

    session.execute("COPY diet FROM 'diet'")

    assert session.execute("SELECT label, filename FROM diet").to_dict("records") == [
        {"label": "apple pie", "filename": "1.jpg"},
        {"label": "apple pie", "filename": "2.jpg"},
        {"label": "kimchi", "filename": "3.jpg"},
    ]


def test_images_outside_the_workspace_keep_absolute_paths(session, tmp_path):
    _images(tmp_path / "outside", ["x.jpg"])

    session.execute(f"COPY outside FROM '{tmp_path / 'outside'}/'")

    assert session.execute("SELECT image_path FROM outside")["image_path"].tolist() == [str(tmp_path / "outside" / "x.jpg")]


def test_a_folder_without_media_is_a_clear_error(session, workspace):
    (workspace / "empty").mkdir()

    with pytest.raises(DatasetError, match="no image, audio or video files"):
        session.execute("COPY nothing FROM 'empty/'")


def test_a_folder_mixing_images_and_audio_is_refused(session, workspace):
    _images(workspace / "mixed", ["a.jpg"])
    (workspace / "mixed" / "b.wav").write_bytes(b"RIFF")

    with pytest.raises(DatasetError, match="mixes media kinds"):
        session.execute("COPY mixed FROM 'mixed/'")


def test_copy_reads_the_csv_of_a_builtin_dataset(session):
    session.execute("GET THANOSQL DATASET digits_data")

    session.execute("COPY digits_test OPTIONS (if_exists='replace') FROM 'thanosql-dataset/digits_data/digits_test.csv'")

    frame = session.execute("SELECT * FROM digits_test")
    assert list(frame.columns) == ["image_path", "filename", "label"]
    assert len(frame) == 200 and str(frame["label"].dtype).startswith("int")
