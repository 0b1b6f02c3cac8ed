"""COPY: files (CSV, Parquet, JSON, pickle), folders of images, JSON records in the statement;
if_exists and its legacy spelling; a failed replace leaves the old table intact. Malformed files
(lines with different numbers of fields, empty files, text that is not UTF-8) are clear errors
naming the line, never a quietly wrong table; Ctrl-C changes nothing."""

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

    assert session.execute("SELECT image FROM arrays")["image"].map(
        lambda v: np.asarray(v.tolist()).tolist()
    ).tolist() == [[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]


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
        {"n": 25000, "s": sum(i % 7 for i in range(25000))}
    ]


def test_a_path_is_passed_to_duckdb_as_a_value_not_pasted_into_sql(session, workspace):
    _csv(workspace, "it's here; DROP TABLE x.csv")

    session.execute('COPY odd FROM "it\'s here; DROP TABLE x.csv"')

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

    assert session.execute("SELECT image_path FROM outside")["image_path"].tolist() == [
        str(tmp_path / "outside" / "x.jpg")
    ]


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

    session.execute(
        "COPY digits_test OPTIONS (if_exists='replace') FROM 'thanosql-dataset/digits_data/digits_test.csv'"
    )

    frame = session.execute("SELECT * FROM digits_test")
    assert list(frame.columns) == ["image_path", "filename", "label"]
    assert len(frame) == 200 and str(frame["label"].dtype).startswith("int")


# ------------------------------------------------------------------------- malformed files


def test_a_csv_whose_lines_have_different_numbers_of_fields_is_refused_naming_the_line(session, workspace):
    # DuckDB's sniffer would read this as one VARCHAR column of whole lines.
    _csv(workspace, "ragged.csv", "a,b,c\n1,2,3\n4,5\n7,8,9\n")

    with pytest.raises(DatasetError) as caught:
        session.execute("COPY ragged FROM 'ragged.csv'")

    assert "ragged.csv: line 3 has 2 fields where 3 are expected" in caught.value.message
    assert "double quotes" in caught.value.hint
    assert not session.execute("SELECT * FROM duckdb_tables() WHERE table_name = 'ragged'").shape[0]


def test_a_ragged_csv_is_not_read_as_its_last_lines_alone(session, workspace):
    # Here the sniffer would take the first three lines for a preamble and keep one row of four.
    _csv(workspace, "ragged.csv", "a,b,c\n1,2,3\n4,5\n6,7,8,9\n")

    with pytest.raises(DatasetError) as caught:
        session.execute("COPY ragged FROM 'ragged.csv'")

    assert "line 3 has 2 fields where 3 are expected (2 lines in all have a different number)" in caught.value.message


def test_a_ragged_line_far_past_the_sampled_rows_is_named(session, workspace):
    rows = "".join(f"{i},{i}\n" for i in range(30000))
    _csv(workspace, "late.csv", "a,b\n" + rows + "1,2,3\n")

    with pytest.raises(DatasetError, match="line 30002 has 3 fields where 2 are expected"):
        session.execute("COPY late FROM 'late.csv'")


def test_a_tab_separated_file_with_a_short_line_is_refused_naming_the_tab(session, workspace):
    _csv(workspace, "ragged.tsv", "a\tb\tc\n1\t2\t3\n4\t5\n")

    with pytest.raises(DatasetError) as caught:
        session.execute("COPY ragged FROM 'ragged.tsv'")

    assert "line 3 has 2 fields where 3 are expected" in caught.value.message
    assert "'tab'" in caught.value.hint


def test_a_one_column_csv_whose_values_hold_commas_stays_one_column(session, workspace):
    _csv(workspace, "notes.csv", "text\nhello, world\nplain\n")

    session.execute("COPY notes FROM 'notes.csv'")

    assert session.execute("SELECT text FROM notes")["text"].tolist() == ["hello, world", "plain"]


def test_an_empty_csv_file_is_a_clear_error_not_a_table_of_column0(session, workspace):
    _csv(workspace, "empty.csv", "")

    with pytest.raises(DatasetError) as caught:
        session.execute("COPY empty FROM 'empty.csv'")

    assert caught.value.message.endswith("empty.csv: the file is empty")
    assert "header" in caught.value.hint
    assert not session.execute("SELECT * FROM duckdb_tables() WHERE table_name = 'empty'").shape[0]


def test_an_empty_json_file_is_a_clear_error(session, workspace):
    (workspace / "empty.jsonl").write_text("\n")

    with pytest.raises(DatasetError, match="empty.jsonl: the file is empty"):
        session.execute("COPY empty FROM 'empty.jsonl'")


def test_a_csv_with_only_a_header_becomes_an_empty_table_with_its_columns(session, workspace):
    _csv(workspace, "header.csv", "name,age\n")

    session.execute("COPY nobody FROM 'header.csv'")

    frame = session.execute("SELECT * FROM nobody")
    assert list(frame.columns) == ["name", "age"] and len(frame) == 0


def test_a_latin_1_csv_is_refused_naming_its_line_and_column_with_an_encoding_hint(session, workspace):
    (workspace / "cities.csv").write_bytes("name,city\nann,Paris\nbob,K\xf6ln\n".encode("latin-1"))

    with pytest.raises(DatasetError) as caught:
        session.execute("COPY cities FROM 'cities.csv'")

    message = caught.value.message
    assert "cities.csv: it is not UTF-8 text: line 3, column 6 (byte 25) holds f6" in message
    assert "encoding='latin-1'" in caught.value.hint and str(workspace / "cities.csv") in caught.value.hint


def test_a_utf_16_csv_gets_the_utf_16_hint(session, workspace):
    (workspace / "wide.csv").write_bytes("name\nann\n".encode("utf-16"))

    with pytest.raises(DatasetError) as caught:
        session.execute("COPY wide FROM 'wide.csv'")

    assert "line 1, column 1 (byte 0)" in caught.value.message
    assert "encoding='utf-16'" in caught.value.hint


def test_a_gzipped_latin_1_csv_is_refused_with_the_position_in_the_unpacked_text(session, workspace):
    import gzip

    (workspace / "cities.csv.gz").write_bytes(gzip.compress("name,city\nbob,K\xf6ln\n".encode("latin-1")))

    with pytest.raises(DatasetError, match="line 2, column 6 .byte 15. holds f6"):
        session.execute("COPY cities FROM 'cities.csv.gz'")


def test_a_latin_1_json_lines_file_is_refused_naming_its_line(session, workspace):
    (workspace / "cities.jsonl").write_bytes('{"city": "Paris"}\n{"city": "K\xf6ln"}\n'.encode("latin-1"))

    with pytest.raises(DatasetError) as caught:
        session.execute("COPY cities FROM 'cities.jsonl'")

    assert "cities.jsonl: it is not UTF-8 text: line 2, column 12 (byte 29) holds f6" in caught.value.message
    assert "UTF-8" in caught.value.hint


# ------------------------------------------------------------------------- interruptions


def test_ctrl_c_while_copy_reads_leaves_the_old_table_and_closes_the_reader(session, workspace, monkeypatch):
    import duckdb

    from thanosql.errors import ThanoSQLError
    from thanosql.statements import data

    _csv(workspace)
    _csv(workspace, "more.csv", "name,age\ncid,50\n")
    session.execute("COPY people FROM 'people.csv'")
    private = []
    real_connect = duckdb.connect

    def recording_connect(*args, **kwargs):
        connection = real_connect(*args, **kwargs)
        if not args or args[0] == ":memory:":
            private.append(connection)
        return connection

    real_scan = data._scan

    def interrupted(*args, **kwargs):
        real_scan(*args, **kwargs)
        raise KeyboardInterrupt  # the user's Ctrl-C, once DuckDB has read the file

    monkeypatch.setattr(duckdb, "connect", recording_connect)
    monkeypatch.setattr(data, "_scan", interrupted)

    # The session may turn Ctrl-C into its one-line message; either way nothing may change.
    with pytest.raises((KeyboardInterrupt, ThanoSQLError)):
        session.execute("COPY people OPTIONS (if_exists='replace') FROM 'more.csv'")

    assert _rows(session, "people") == [{"name": "ann", "age": 31}, {"name": "bob", "age": 42}]
    assert private, "COPY reads files through a private in-memory connection"
    for connection in private:
        with pytest.raises(duckdb.ConnectionException):
            connection.execute("SELECT 1")


def test_copy_reads_files_without_the_workspace_connection(session, workspace, monkeypatch):
    from thanosql.statements import data

    _csv(workspace)
    seen = []
    real_scan = data._scan

    def scan(connection, *args, **kwargs):
        seen.append(connection.execute("SELECT current_database()").fetchall()[0][0])
        return real_scan(connection, *args, **kwargs)

    monkeypatch.setattr(data, "_scan", scan)

    session.execute("COPY people FROM 'people.csv'")

    assert seen == ["memory"]
    assert len(_rows(session, "people")) == 2
