"""Config: shipped defaults, user overrides, and typos that must not pass silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from pfs.exceptions import ConfigError
from pfs.settings import load_config


def test_defaults_have_every_section_and_a_stable_hash() -> None:
    cfg = load_config()
    assert {"pipeline", "endpoints", "reconcile"} <= set(cfg.data)
    assert cfg.hash == load_config().hash


def test_user_file_overrides_one_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[endpoints]\nindex_date = "diagnosis"\n')
    cfg = load_config(path)
    assert cfg.section("endpoints")["index_date"] == "diagnosis"
    assert cfg.hash != load_config().hash


def test_typo_is_rejected_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[endpoints]\nindex_dat = 'diagnosis'\n")
    with pytest.raises(ConfigError, match="did you mean 'index_date'"):
        load_config(path)


def test_wrong_type_is_rejected() -> None:
    with pytest.raises(ConfigError, match="must be list"):
        load_config({"pipeline": {"sources": "steroid"}})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[endpoints\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
