"""engine='ray' on a real Ray cluster: one local Ray (loopback only, 2 CPUs) started once for the
module and shared by its tests. CONVERT and BUILD MODEL on Ray give what the local engine gives;
bad images, paths the workers cannot read and a missing Ray give clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import thanosql
from thanosql import DatasetError, ThanoSQLError
from tiny_clip import captioned_pictures, save_tiny_checkpoint, upload_tiny

ray = pytest.importorskip("ray")

# Largest difference allowed between a weight trained locally and on Ray with one worker: the same
# batches, steps and seed. Measured 0.0 (bit for bit) with the same thread count on both sides.
# With other thread counts sums round differently, and Adam's first steps (about lr times the sign
# of the gradient) turn that into up to lr per step on weights whose gradient is near 0: measured
# 1.7e-3 for CLIP after 3 steps at lr 1e-3.
TRAINING_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def cluster():
    """A Ray of 2 CPUs on 127.0.0.1, for every test of this module."""
    if ray.is_initialized():
        ray.shutdown()
    # One torch thread in the workers, as in the tests' own process (see training below): the same
    # sums in the same order.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), seed=1)


@pytest.fixture
def tiny(session, checkpoint, cluster, monkeypatch):
    """Session with model 'tiny' uploaded and table pics(image_path, caption, n) of 12 images;
    CONVERT on Ray uses one actor (starting a second one costs seconds on 2 cores)."""
    monkeypatch.setenv("THANOSQL_RAY_ACTORS", "1")
    upload_tiny(session, checkpoint)
    captioned_pictures(session)
    session.configure(reuse_bytes=0)  # every CONVERT embeds every image
    return session


def vectors(frame, column="convert_result"):
    return np.stack(frame[column].to_numpy())


def test_convert_on_ray_equals_the_local_engine(tiny, monkeypatch):
    monkeypatch.delenv("THANOSQL_RAY_ACTORS")  # the pool the cluster's 2 CPUs give: 2 actors
    query = "CONVERT USING tiny OPTIONS (batch_size=5{}) AS SELECT * FROM pics ORDER BY n"
    local = tiny.execute(query.format(""))
    on_ray = tiny.execute(query.format(", engine='ray'"))
    assert list(on_ray.columns) == list(local.columns)
    assert on_ray["n"].tolist() == list(range(12))
    np.testing.assert_allclose(vectors(on_ray), vectors(local), atol=1e-5, rtol=0)


def test_the_engine_setting_sends_convert_of_texts_to_ray(tiny):
    query = "CONVERT USING tiny OPTIONS (convert_type='text', text_col='caption') AS SELECT * FROM pics ORDER BY n"
    local = tiny.execute(query)
    tiny.configure(engine="ray")
    np.testing.assert_allclose(vectors(tiny.execute(query)), vectors(local), atol=1e-5, rtol=0)


def test_convert_on_ray_writes_table_name_and_reuses_what_it_embedded(tiny, notices):
    tiny.configure(reuse_bytes=1 << 20)
    query = "CONVERT USING tiny OPTIONS (engine='ray', table_name='embedded') AS SELECT * FROM pics ORDER BY n"
    first = tiny.execute(query)
    again = tiny.execute(query)
    assert any("reused the embeddings of 12 of 12 images" in str(n) for n in notices)
    np.testing.assert_array_equal(vectors(again), vectors(first))
    stored = tiny.execute("SELECT * FROM embedded ORDER BY n")
    np.testing.assert_array_equal(vectors(stored), vectors(first))


def test_a_bad_image_on_ray_names_its_row_as_locally(tiny):
    (tiny.workspace / "pics" / "4.jpg").write_bytes(b"not a picture")
    query = "CONVERT USING tiny OPTIONS (batch_size=3{}) AS SELECT * FROM pics ORDER BY n"
    with pytest.raises(DatasetError) as local:
        tiny.execute(query.format(""))
    with pytest.raises(DatasetError) as on_ray:
        tiny.execute(query.format(", engine='ray'"))
    assert "row 5 of 12" in str(on_ray.value)
    assert (on_ray.value.message, on_ray.value.hint) == (local.value.message, local.value.hint)


def test_on_error_null_on_ray_gives_null_where_locally(tiny, notices):
    (tiny.workspace / "pics" / "7.jpg").write_bytes(b"not a picture")
    query = "CONVERT USING tiny OPTIONS (on_error='null'{}) AS SELECT * FROM pics ORDER BY n"
    local = tiny.execute(query.format(""))
    on_ray = tiny.execute(query.format(", engine='ray'"))
    assert on_ray["convert_result"].isna().tolist() == [n == 7 for n in range(12)]
    kept = [n for n in range(12) if n != 7]
    np.testing.assert_allclose(vectors(on_ray.iloc[kept]), vectors(local.iloc[kept]), atol=1e-5, rtol=0)
    assert sum("1 of 12 image could not be read" in str(n) for n in notices) == 2


def test_a_missing_image_on_ray_says_paths_must_be_readable_by_the_workers(tiny):
    (tiny.workspace / "pics" / "2.jpg").unlink()
    with pytest.raises(DatasetError) as error:
        tiny.execute("CONVERT USING tiny OPTIONS (engine='ray') AS SELECT * FROM pics ORDER BY n")
    text = str(error.value)
    assert "cannot read image 'pics/2.jpg' in row 3 of 12: file not found" in text
    assert "readable by the Ray workers" in text


def test_an_image_only_this_process_can_read_is_a_clear_error_on_ray(tiny):
    # /proc/self/fd/N is this process's open file N: a path the Ray workers (other processes) cannot read.
    with open(tiny.workspace / "pics" / "0.jpg", "rb") as handle:
        fd = os.dup2(handle.fileno(), 987)
        try:
            tiny.execute(f"CREATE TABLE mine AS SELECT '/proc/self/fd/{fd}' AS image_path")
            with pytest.raises(DatasetError) as error:
                tiny.execute("CONVERT USING tiny OPTIONS (engine='ray') AS SELECT * FROM mine")
        finally:
            os.close(fd)
    text = str(error.value)
    assert f"a Ray worker cannot read image '/proc/self/fd/{fd}' in row 1 of 1" in text
    assert "though this process can" in text and "shared filesystem" in text
    assert "Traceback" not in text


def test_an_unknown_engine_is_an_error_naming_the_engines(workspace):
    with pytest.raises(ThanoSQLError, match="unknown engine 'spark'") as error:
        thanosql.connect(workspace, engine="spark")
    assert "local, ray" in str(error.value)


def test_the_engine_setting_comes_from_thanosql_engine(workspace, monkeypatch):
    monkeypatch.setenv("THANOSQL_ENGINE", "ray")
    with thanosql.connect(workspace) as session:
        assert session.settings.engine == "ray"


def test_config_thanosqlmagic_engine_sets_the_sessions_engine_and_refuses_others(workspace, monkeypatch, caplog):
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from IPython.testing.globalipapp import start_ipython

    monkeypatch.setenv("THANOSQL_WORKSPACE", str(workspace))
    ip = start_ipython() or TerminalInteractiveShell.instance()  # None when another test started it
    ip.run_line_magic("load_ext", "thanosql")
    magic = ip.magics_manager.registry["ThanoSQLMagic"]
    magic._session = None
    try:
        ip.run_line_magic("config", "ThanoSQLMagic.engine = 'ray'")
        assert magic.session.settings.engine == "ray"
        ip.run_cell("%config ThanoSQLMagic.engine = 'spark'")  # %config logs what the setting refused
        assert "unknown engine 'spark'" in caplog.text and "Traceback" not in caplog.text
        assert magic.session.settings.engine == "ray"
    finally:
        magic.engine = None
        magic.session.close()
        magic._session = None


def test_asking_for_ray_without_ray_installed_names_the_install_command(tmp_path):
    # A child process in which `import ray` fails, as where the extra is not installed.
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["ray"] = None
        import thanosql
        session = thanosql.connect({str(tmp_path)!r}, engine="ray", progress=False)
        session.execute("CREATE TABLE t AS SELECT 'a.jpg' AS image_path")
        try:
            session.execute("CONVERT USING any_model AS SELECT * FROM t")
        except thanosql.ThanoSQLError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "engine 'ray' needs Ray, which is not installed here" in done.stdout, done.stderr
    assert "pip install 'thanosql[ray]'" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


# -- training ------------------------------------------------------------------------------------


def weights(session, name):
    from thanosql.models.simclr import read_simclr_model

    backbone, head, _ = read_simclr_model(session.models.get(name))
    return {**backbone.state_dict(), **{f"head.{k}": v for k, v in head.state_dict().items()}}


def test_build_model_on_ray_with_one_worker_equals_the_local_engine(tiny, notices):
    query = (
        "BUILD MODEL {} USING SimCLR OPTIONS (max_epochs=2, batch_size=4, input_size=16, seed=5{}) "
        "AS SELECT * FROM pics ORDER BY n"
    )
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: Adam turns any rounding difference into a step
    try:
        tiny.execute(query.format("here", ""))
    finally:
        torch.set_num_threads(threads)
    tiny.execute(query.format("there", ", engine='ray'"))
    assert any("training SimCLR on Ray: 1 worker" in str(n) for n in notices)
    local, on_ray = weights(tiny, "here"), weights(tiny, "there")
    assert local.keys() == on_ray.keys()
    largest = max(float((local[k].float() - on_ray[k].float()).abs().max()) for k in local)
    assert largest < TRAINING_TOLERANCE
    assert not (tiny.workspace / "thanosql-ray").exists()


class one_torch_thread:
    """This process's torch on one thread, as the Ray workers are: the same sums in the same order."""

    def __enter__(self):
        import torch

        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *_):
        import torch

        torch.set_num_threads(self.threads)


def clip_weights(session, name):
    from thanosql.models.clip import read_clip_model

    return read_clip_model(session.models.get(name))[0].state_dict()


def largest_difference(first: dict, second: dict) -> float:
    assert first.keys() == second.keys()
    return max(float((first[k].float() - second[k].float()).abs().max()) for k in first)


def test_build_model_using_clip_on_ray_with_one_worker_equals_the_local_engine(tiny, notices):
    query = (
        "BUILD MODEL {} USING CLIP OPTIONS (image_col='image_path', text_col='caption', max_epochs=1, batch_size=4, "
        "seed=5{}) AS SELECT * FROM pics ORDER BY n"
    )
    with one_torch_thread():
        tiny.execute(query.format("clip_here", ""))
    tiny.execute(query.format("clip_there", ", engine='ray'"))
    assert any("on Ray: 1 worker" in str(n) for n in notices)
    assert largest_difference(clip_weights(tiny, "clip_here"), clip_weights(tiny, "clip_there")) < TRAINING_TOLERANCE


def test_fit_model_on_ray_with_one_worker_continues_as_the_local_engine(tiny):
    build = "BUILD MODEL base USING SimCLR OPTIONS (max_epochs=1, batch_size=4, input_size=16, seed=5) AS SELECT * FROM pics"
    fit = "FIT MODEL {} USING base OPTIONS (max_epochs=1{}) AS SELECT * FROM pics ORDER BY n"
    with one_torch_thread():
        tiny.execute(build)
        tiny.execute(fit.format("fit_here", ""))
    tiny.execute(fit.format("fit_there", ", engine='ray'"))
    assert largest_difference(weights(tiny, "fit_here"), weights(tiny, "fit_there")) < TRAINING_TOLERANCE
    assert largest_difference(weights(tiny, "base"), weights(tiny, "fit_here")) > 0  # it did train
