"""Path checks: run names stay inside out_dir; files where folders are expected are one-line errors."""

import pytest

from ssrobust.api import make_config
from ssrobust.errors import ConfigError
from ssrobust.paths import check_folder_path, check_run_name, make_dir


@pytest.mark.parametrize("name", ["", "  ", "/abs/run", "../escape", "a/b", "a\\b", "..", ".", "x..y"])
def test_bad_run_names_are_refused(name):
    with pytest.raises(ConfigError, match="is not a valid run name") as e:
        make_config({"name": name})
    assert "\n" not in str(e.value)


def test_good_run_names_pass():
    for name in ("run", "s0.5_glc", "class_3_oe", "rotation seed 1"):
        assert check_run_name(name) == name and make_config({"name": name}).name == name


def test_file_where_a_folder_is_expected(tmp_path):
    f = tmp_path / "some_file"
    f.write_text("mine")
    with pytest.raises(ConfigError, match=f"out {f} is a file, expected a folder"):
        make_dir(f, "out")
    with pytest.raises(ConfigError, match=f"cannot be created: {f} is a file, expected a folder"):
        check_folder_path(f / "sub", "out")
    assert f.read_text() == "mine"
    assert make_dir(tmp_path / "new" / "deeper", "out") is True
    assert make_dir(tmp_path / "new" / "deeper", "out") is False
