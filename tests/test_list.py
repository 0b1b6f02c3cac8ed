"""LIST TABLE, LIST MODEL, LIST THANOSQL MODEL and LIST THANOSQL DATASET: the columns DIALECT.md
describes, typed even when empty, and usable as a derived table."""

from __future__ import annotations

import pandas as pd
import yaml

import thanosql


def test_list_table_names_the_tables_in_order(session):
    session.execute("CREATE TABLE zebra AS SELECT 1 AS x; CREATE TABLE apple AS SELECT 2 AS y")

    frame = session.execute("LIST TABLE")

    assert frame.to_dict("list") == {"table_name": ["apple", "zebra"]}


def test_list_table_leaves_out_views_temporary_tables_and_other_schemas_are_qualified(session):
    session.execute(
        "CREATE TABLE kept AS SELECT 1 AS x; CREATE VIEW seen AS SELECT 1 AS x; "
        "CREATE TEMP TABLE scratch AS SELECT 1 AS x; CREATE SCHEMA lab; CREATE TABLE lab.trial AS SELECT 1 AS x"
    )

    assert session.execute("LIST TABLE")["table_name"].tolist() == ["kept", "lab.trial"]


def test_list_table_of_an_empty_workspace_has_its_column_and_no_rows(session):
    frame = session.execute("LIST TABLE")

    assert list(frame.columns) == ["table_name"] and len(frame) == 0


def test_list_table_works_as_a_derived_table(session):
    session.execute(
        "CREATE TABLE mnist_train AS SELECT 1 AS x; CREATE TABLE mnist_test AS SELECT 1 AS x; "
        "CREATE TABLE other AS SELECT 1 AS x"
    )

    frame = session.execute("SELECT table_name FROM (LIST TABLE) WHERE table_name LIKE 'mnist%' ORDER BY 1")

    assert frame["table_name"].tolist() == ["mnist_test", "mnist_train"]


def test_list_model_shows_the_stored_models_with_class_and_time(session):
    with session.models.create("tutorial_search_clip", family="clip", arch="ViT-B-32", embedding_dim=512) as folder:
        (folder / "weights.pt").write_bytes(b"...")
    with session.models.create("my_image_search_model", family="simclr", arch="resnet18", embedding_dim=512):
        pass

    frame = session.execute("LIST MODEL")

    assert list(frame.columns[:3]) == ["name", "class_name", "last_updated_utc"]
    assert frame[["name", "class_name", "arch"]].to_dict("records") == [
        {"name": "my_image_search_model", "class_name": "SimCLR", "arch": "resnet18"},
        {"name": "tutorial_search_clip", "class_name": "CLIPEn", "arch": "ViT-B-32"},
    ]
    created = pd.Timestamp(session.models.get("tutorial_search_clip").created).tz_convert(None)
    assert frame["last_updated_utc"][1] == created


def test_list_model_of_an_empty_store_is_typed_and_empty(session):
    frame = session.execute("SELECT name, last_updated_utc + INTERVAL 1 DAY AS later FROM (LIST MODEL)")

    assert list(frame.columns) == ["name", "later"] and len(frame) == 0


def test_list_thanosql_model_shows_the_pre_built_models_get_can_fetch(session):
    from thanosql.models.catalog import list_pretrained

    frame = session.execute("LIST THANOSQL MODEL")

    assert list(frame.columns) == ["name", "class_name", "description"]
    assert frame["name"].tolist() == [row["name"] for row in list_pretrained()]
    assert "clip" in frame["name"].tolist()
    assert session.execute("SELECT * FROM (LIST THANOSQL MODEL) WHERE name = 'clip'")["class_name"].tolist() == [
        "CLIPEn"
    ]


def test_list_thanosql_model_says_what_it_lists_and_points_to_list_model(session, notices):
    session.execute("LIST THANOSQL MODEL")
    with session.models.create("my_model", family="simclr", arch="resnet18", embedding_dim=512):
        pass
    session.execute("LIST THANOSQL MODEL")

    assert notices[0].startswith("The pre-built models that GET THANOSQL MODEL can fetch.")
    assert "listed by LIST MODEL (none yet)" in notices[0]
    assert "listed by LIST MODEL (this workspace has 1 model of its own)" in notices[1]


def test_list_thanosql_model_read_by_a_query_says_nothing(session, notices):
    frame = session.execute("SELECT name FROM (LIST THANOSQL MODEL) WHERE name = 'clip'")

    assert frame["name"].tolist() == ["clip"] and notices == []


def test_list_thanosql_dataset_shows_the_manifest_and_what_is_downloaded(session):
    before = session.execute("LIST THANOSQL DATASET")
    session.execute("GET THANOSQL DATASET shapes_data")

    after = session.execute("SELECT dataset_name, downloaded FROM (LIST THANOSQL DATASET) WHERE downloaded")

    assert list(before.columns) == ["dataset_name", "data_type", "description", "builtin", "downloaded"]
    assert before["dataset_name"].tolist() == ["unsplash_data", "mnist_data", "digits_data", "shapes_data"]
    assert set(before["data_type"]) == {"image"}
    assert not before["downloaded"].any()
    assert after.to_dict("records") == [{"dataset_name": "shapes_data", "downloaded": True}]


def test_list_thanosql_dataset_reads_the_manifest_of_the_session(tmp_path, workspace):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "datasets": {
                    "only_mine": {
                        "description": "mine",
                        "license": "CC0",
                        "data_type": "tabular",
                        "files": [{"url": "https://example.org/m.csv", "sha256": "0" * 64, "size": 1}],
                    }
                }
            }
        )
    )

    with thanosql.connect(
        workspace, offline=True, progress=False, datasets_manifest=manifest, notify=lambda _: None
    ) as session:
        frame = session.execute("SELECT dataset_name, data_type, builtin FROM (LIST THANOSQL DATASET)")

    assert frame.to_dict("records") == [{"dataset_name": "only_mine", "data_type": "tabular", "builtin": False}]


def test_list_results_join_like_tables(session):
    session.execute("CREATE TABLE wanted AS SELECT 'digits_data' AS name")

    frame = session.execute(
        "SELECT d.dataset_name, d.builtin FROM wanted w JOIN (LIST THANOSQL DATASET) d ON d.dataset_name = w.name"
    )

    assert frame.to_dict("records") == [{"dataset_name": "digits_data", "builtin": True}]
