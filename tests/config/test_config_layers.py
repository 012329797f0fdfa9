"""Precedence of the config layers and the refusal of bad keys, types and relations."""

from __future__ import annotations

import pytest

from harunner.config import Config, load
from harunner.errors import ConfigError


@pytest.fixture
def config_file(tmp_path):
    def write(text: str):
        path = tmp_path / "harunner.toml"
        path.write_text(text)
        return str(path)
    return write


def test_defaults_when_nothing_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load(env={})
    assert config == Config() and config.source == "defaults"


def test_file_beats_defaults_env_beats_file_overrides_beat_env(config_file):
    path = config_file('slots = 5\nlog_level = "debug"\njobs = ["a", "b"]\n')
    from_file = load(path, env={})
    assert (from_file.slots, from_file.log_level, from_file.jobs) == (5, "debug", ("a", "b"))
    assert from_file.heartbeat_ms == Config().heartbeat_ms
    env = {"HARUNNER_SLOTS": "7", "HARUNNER_JOBS": "x, y"}
    from_env = load(path, env=env)
    assert (from_env.slots, from_env.log_level, from_env.jobs) == (7, "debug", ("x", "y"))
    top = load(path, overrides={"slots": 9, "log_level": None}, env=env)
    assert (top.slots, top.log_level) == (9, "debug")
    assert top.source == "command line"


def test_config_file_comes_from_the_environment_variable(config_file):
    path = config_file("slots = 4\n")
    assert load(env={"HARUNNER_CONFIG": path}).slots == 4


def test_missing_explicit_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(str(tmp_path / "nope.toml"), env={})


def test_unknown_key_in_the_file_names_file_and_key(config_file):
    path = config_file("slotz = 3\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert path in str(caught.value) and "'slotz'" in str(caught.value)


@pytest.mark.parametrize("text, key", [
    ('slots = "three"\n', "slots"),
    ("slots = true\n", "slots"),
    ("heartbeat_ms = 20.5\n", "heartbeat_ms"),
    ("jobs = [1, 2]\n", "jobs"),
    ("start_method = 3\n", "start_method"),
])
def test_wrong_type_in_the_file_names_file_and_key(config_file, text, key):
    path = config_file(text)
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert path in str(caught.value) and key in str(caught.value)


def test_wrong_type_in_the_environment_names_the_environment_and_key():
    with pytest.raises(ConfigError) as caught:
        load(env={"HARUNNER_SLOTS": "many"})
    assert "environment" in str(caught.value) and "slots" in str(caught.value)


def test_hang_timeout_below_two_heartbeats_is_refused_with_its_origin(config_file):
    path = config_file("heartbeat_ms = 100\nhang_timeout_ms = 150\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert path in str(caught.value) and "hang_timeout_ms" in str(caught.value)
    with pytest.raises(ConfigError, match="command line: hang_timeout_ms"):
        load(overrides={"hang_timeout_ms": 150}, env={})
    assert load(overrides={"hang_timeout_ms": 400}, env={}).hang_timeout_ms == 400


@pytest.mark.parametrize("overrides, key", [
    ({"slots": 0}, "slots"), ({"start_method": "fork"}, "start_method"),
    ({"log_level": "loud"}, "log_level"), ({"jobs": []}, "jobs"),
    ({"worker_grace_ms": -1}, "worker_grace_ms"), ({"state_dir": ""}, "state_dir"),
    ({"respawn_backoff_max_ms": 10}, "respawn_backoff_max_ms"),
])
def test_impossible_values_are_refused(overrides, key):
    with pytest.raises(ConfigError, match=f"command line: {key}"):
        load(overrides=overrides, env={})


def test_a_table_in_the_file_is_refused(config_file):
    with pytest.raises(ConfigError, match=r"unexpected table \[runner\]"):
        load(config_file("[runner]\nslots = 3\n"), env={})


def test_invalid_toml_is_refused(config_file):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(config_file("slots = = 3\n"), env={})


def test_a_relation_is_checked_on_the_final_config_not_per_layer(config_file):
    path = config_file("heartbeat_ms = 300\n")
    config = load(path, env={"HARUNNER_HANG_TIMEOUT_MS": "1000"})
    assert (config.heartbeat_ms, config.hang_timeout_ms) == (300, 1000)


def test_a_misspelt_environment_variable_is_refused_with_the_allowed_names(config_file):
    with pytest.raises(ConfigError) as error:
        load(config_file(""), env={"HARUNNER_SLOT": "3"})
    assert "HARUNNER_SLOT" in str(error.value) and "HARUNNER_SLOTS" in str(error.value)
