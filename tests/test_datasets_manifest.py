"""The datasets manifest: the bundled entries, and clear errors naming the file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from thanosql.datasets.manifest import (
    ENTRY_KEYS,
    FILE_KEYS,
    FORMAT,
    bundled_manifest_path,
    load_manifest,
    parse_manifest,
)
from thanosql.errors import DatasetError

TUTORIAL_COLUMNS = {
    "unsplash_data": ["photo_id", "image_path", "photo_image_url", "photo_description", "ai_description"],
    "mnist_train": ["image_path", "filename", "label"],
    "mnist_test": ["image_path", "filename", "label"],
}


def _write(tmp_path: Path, datasets: dict) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"datasets": datasets}), encoding="utf-8")
    return path


def _file(**extra) -> dict:
    return {"url": "https://example.org/d.zip", "sha256": "ab" * 32, "size": 10, **extra}


def _entry(**extra) -> dict:
    return {"description": "d", "license": "CC0", "files": [_file()], **extra}


def _error(tmp_path: Path, datasets: dict) -> DatasetError:
    path = _write(tmp_path, datasets)
    with pytest.raises(DatasetError) as caught:
        load_manifest(path)
    assert str(path) in caught.value.message
    return caught.value


# ------------------------------------------------------------------------- the bundled file


def test_the_bundled_manifest_has_the_tutorial_datasets_and_the_builtins():
    manifest = load_manifest()

    assert list(manifest.datasets) == ["unsplash_data", "mnist_data", "digits_data", "shapes_data"]
    assert manifest.builtin_names() == ["digits_data", "shapes_data"]


def test_the_tutorial_datasets_hold_the_tables_and_columns_the_seeds_show():
    manifest = load_manifest()
    tables = {t.name: list(t.columns) for name in ("unsplash_data", "mnist_data") for t in manifest.get(name).tables}

    assert tables == TUTORIAL_COLUMNS
    assert manifest.get("mnist_data").tables[0].file == "mnist_train.csv"
    assert manifest.get("unsplash_data").tables[0].file == "unsplash.csv"


def test_the_builtins_have_the_columns_of_the_tutorial_datasets_they_stand_in_for():
    manifest = load_manifest()

    assert {t.columns for t in manifest.get("digits_data").tables} == {tuple(TUTORIAL_COLUMNS["mnist_test"])}
    assert {t.columns for t in manifest.get("shapes_data").tables} == {tuple(TUTORIAL_COLUMNS["unsplash_data"])}
    assert manifest.get("mnist_data").alternative == "digits_data"
    assert manifest.get("unsplash_data").alternative == "shapes_data"


def test_every_downloaded_file_is_pinned_by_sha256_or_says_why_not():
    for spec in load_manifest().datasets.values():
        for file in spec.files:
            assert file.sha256 or (file.unverified and len(file.unverified) > 40), (spec.name, file.url)


def test_the_mnist_files_carry_their_published_checksums_and_sizes():
    files = {f.name: (f.sha256, f.size) for f in load_manifest().get("mnist_data").files}

    assert files["t10k-labels-idx1-ubyte.gz"] == (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        4542,
    )
    assert files["train-images-idx3-ubyte.gz"][1] == 9912422
    assert all(f.mirrors for f in load_manifest().get("mnist_data").files)


def test_only_the_downloaded_datasets_need_the_network():
    manifest = load_manifest()

    assert [n for n, s in manifest.datasets.items() if s.needs_network] == ["unsplash_data", "mnist_data"]


def test_the_top_level_manifest_is_a_link_to_the_bundled_one():
    top = Path(__file__).resolve().parents[1] / "datasets_manifest.yaml"

    assert top.resolve() == bundled_manifest_path().resolve()


def test_the_format_reference_names_every_key_the_reader_accepts():
    for key in ENTRY_KEYS + FILE_KEYS:
        assert re.search(rf"\b{key}:", FORMAT), key


# ------------------------------------------------------------------------- user manifests


def test_a_user_manifest_with_the_minimum_keys_is_read(tmp_path):
    manifest = load_manifest(_write(tmp_path, {"mine": _entry()}))

    spec = manifest.get("mine")
    assert spec.files[0].name == "d.zip" and spec.files[0].is_archive
    assert spec.needs_network and spec.builtin is None


def test_a_relative_url_is_read_beside_the_manifest(tmp_path):
    manifest = load_manifest(_write(tmp_path, {"mine": _entry(files=[_file(url="archives/d.tar.gz")])}))

    assert manifest.get("mine").files[0].url == (tmp_path / "archives" / "d.tar.gz").as_uri()
    assert not manifest.get("mine").needs_network


def test_a_missing_license_is_an_error_naming_the_key(tmp_path):
    entry = _entry()
    del entry["license"]

    error = _error(tmp_path, {"mine": entry})

    assert "datasets.mine.license: missing" in error.message


def test_a_misspelt_key_is_an_error_with_the_nearest_valid_one(tmp_path):
    error = _error(tmp_path, {"mine": _entry(files=[{"url": "https://x/d.zip", "sha265": "ab" * 32}])})

    assert "datasets.mine.files[0].sha265: unknown key" in error.message
    assert "did you mean 'sha256'?" in error.hint


def test_a_malformed_sha256_is_an_error(tmp_path):
    error = _error(tmp_path, {"mine": _entry(files=[_file(sha256="abc123")])})

    assert "datasets.mine.files[0].sha256: expected 64 hexadecimal digits" in error.message


def test_a_file_without_sha256_needs_a_reason(tmp_path):
    error = _error(tmp_path, {"mine": _entry(files=[_file(sha256=None)])})

    assert "datasets.mine.files[0].sha256: missing" in error.message
    assert "unverified" in error.hint


def test_a_file_without_sha256_but_with_a_reason_is_accepted(tmp_path):
    manifest = load_manifest(
        _write(tmp_path, {"mine": _entry(files=[_file(sha256=None, unverified="no checksum is published")])})
    )

    assert manifest.get("mine").files[0].sha256 is None


def test_an_entry_with_both_files_and_builtin_is_an_error(tmp_path):
    error = _error(tmp_path, {"mine": _entry(builtin="digits")})

    assert "has both 'builtin' and 'files'" in error.message


def test_an_unknown_builtin_generator_is_an_error_listing_the_known_ones(tmp_path):
    entry = {"description": "d", "license": "x", "builtin": "digitz"}

    error = _error(tmp_path, {"mine": entry})

    assert "datasets.mine.builtin: unknown builtin 'digitz'" in error.message
    assert "did you mean 'digits'?" in error.hint


def test_an_option_the_generator_does_not_take_is_an_error_when_the_manifest_is_read(tmp_path):
    entry = {"description": "d", "license": "x", "builtin": "digits", "options": {"trian": 10}}

    error = _error(tmp_path, {"mine": entry})

    assert "datasets.mine.options.trian: not an option of builtin 'digits'" in error.message
    assert "did you mean 'train'?" in error.hint


def test_an_unknown_alternative_is_an_error(tmp_path):
    error = _error(tmp_path, {"mine": _entry(alternative="digits_dta")})

    assert "datasets.mine.alternative" in error.message


def test_a_dataset_name_that_could_leave_the_dataset_folder_is_refused(tmp_path):
    error = _error(tmp_path, {"../up": _entry()})

    assert "cannot be a dataset name" in error.message


def test_a_table_file_outside_the_dataset_is_refused(tmp_path):
    error = _error(tmp_path, {"mine": _entry(tables={"t": {"file": "../t.csv"}})})

    assert "datasets.mine.tables.t.file" in error.message


def test_an_unreadable_manifest_says_how_to_point_at_another(tmp_path):
    with pytest.raises(DatasetError) as caught:
        load_manifest(tmp_path / "nowhere.yaml")

    assert str(tmp_path / "nowhere.yaml") in caught.value.message
    assert "THANOSQL_DATASETS_MANIFEST" in caught.value.hint


def test_invalid_yaml_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("datasets: [unclosed", encoding="utf-8")

    with pytest.raises(DatasetError, match="not valid YAML"):
        load_manifest(path)


def test_an_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(DatasetError) as caught:
        load_manifest().get("mnist")

    assert "did you mean 'mnist_data'?" in caught.value.hint


def test_an_unsupported_version_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="unsupported version 2"):
        parse_manifest({"version": 2, "datasets": {"mine": _entry()}}, tmp_path / "m.yaml")


def test_a_dataset_name_too_long_for_a_folder_is_refused(tmp_path):
    error = _error(tmp_path, {"d" * 201: _entry()})

    assert "cannot be a dataset name" in error.message and "longer than 200 characters" in error.message


def test_an_archive_may_declare_its_unpacked_size(tmp_path):
    manifest = load_manifest(_write(tmp_path, {"mine": _entry(files=[_file(unpacked_size=5678)])}))

    assert manifest.get("mine").files[0].unpacked_size == 5678


def test_an_unpacked_size_that_is_not_a_number_of_bytes_is_an_error(tmp_path):
    error = _error(tmp_path, {"mine": _entry(files=[_file(unpacked_size="1 GB")])})

    assert "datasets.mine.files[0].unpacked_size: expected a number of bytes" in error.message


def test_an_unpacked_size_on_a_file_that_is_not_an_archive_is_an_error(tmp_path):
    error = _error(tmp_path, {"mine": _entry(files=[_file(url="https://example.org/d.csv", unpacked_size=10)])})

    assert "datasets.mine.files[0].unpacked_size: d.csv is not an archive" in error.message
