"""ServerConfig and load_config: one source of truth, strict about unknown keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from coord.server._acl import digest_id
from coord.server._config import (
    FOUR_LETTER_WORDS,
    ConfigError,
    ServerConfig,
    convert_value,
    load_config,
)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "coord.toml"
    path.write_text(text)
    return path


def test_ServerConfig_defaults() -> None:
    """The defaults are ZooKeeper's (tickTime 2000, maxClientCnxns 60, jute.maxbuffer)."""
    config = ServerConfig()
    assert (config.host, config.port, config.storage) == ("127.0.0.1", 2181, "rocksdb")
    assert config.tick_time == 2000
    assert config.effective_min_session_timeout == 4000
    assert config.effective_max_session_timeout == 40000
    assert config.max_frame == 0xFFFFF
    assert config.max_client_connections == 60
    assert config.four_letter_words == ("srvr", "ruok", "isro")
    assert config.extended_types is True
    assert config.log_level == "INFO"


def test_ServerConfig_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ServerConfig().port = 1  # type: ignore[misc]


def test_ServerConfig_every_field_is_documented() -> None:
    """Each field's doc feeds the class docstring and the CLI help."""
    for f in dataclasses.fields(ServerConfig):
        assert f.metadata.get("doc"), f.name
        assert f"``{f.name}``" in (ServerConfig.__doc__ or "")


def test_ServerConfig_session_timeouts_follow_tick_time_when_unset() -> None:
    config = ServerConfig(tick_time=500)
    assert config.effective_min_session_timeout == 1000
    assert config.effective_max_session_timeout == 10000
    config = ServerConfig(min_session_timeout=3000, max_session_timeout=5000)
    assert config.effective_min_session_timeout == 3000
    assert config.effective_max_session_timeout == 5000


def test_ServerConfig_star_enables_every_four_letter_word() -> None:
    assert ServerConfig(four_letter_words=("*",)).enabled_four_letter_words == (
        FOUR_LETTER_WORDS - {"snap"}
    )
    assert ServerConfig(four_letter_words=("ruok",)).enabled_four_letter_words == {"ruok"}
    # snap hands out the whole store: "*" does not enable it, naming it does.
    assert "snap" in ServerConfig(four_letter_words=("*", "snap")).enabled_four_letter_words


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"port": 65536}, "port must be between 0 and 65535"),
        ({"port": -1}, "port must be between 0 and 65535"),
        ({"tick_time": 0}, "tick_time must be a positive"),
        ({"min_session_timeout": 50000}, "must not exceed max_session_timeout"),
        ({"min_session_timeout": 5000, "max_session_timeout": 4000}, "must not exceed"),
        ({"max_session_timeout": -1}, "max_session_timeout must be a positive"),
        ({"max_frame": 0}, "max_frame must be a positive"),
        ({"max_client_connections": -1}, "max_client_connections must be 0"),
        ({"handshake_timeout": 0}, "handshake_timeout must be positive"),
        ({"busy_poll_us": -1}, "busy_poll_us must be between 0 (off) and 100000"),
        ({"busy_poll_us": 100_001}, "busy_poll_us must be between 0 (off) and 100000"),
        ({"four_letter_words": ("ruok", "stst")}, "'stst': did you mean 'stat'?"),
        ({"container_check_interval": 0}, "container_check_interval must be a positive"),
        ({"super_digest": "super:not-base64"}, "super_digest must have the form"),
        ({"super_digest": "nocolon"}, "super_digest must have the form"),
        ({"server_id": 0}, "server_id must be at least 1"),
        ({"log_level": "LOUD"}, "log_level must be one of"),
        ({"storage": ""}, "storage must name"),
        ({"port": "2181"}, "port must be an integer, not str"),
        ({"port": True}, "port must be an integer, not bool"),
        ({"extended_types": 1}, "extended_types must be a boolean"),
        ({"four_letter_words": "ruok"}, "four_letter_words must be a list of strings"),
    ],
)
def test_ServerConfig_rejects_invalid_values(kwargs: dict[str, object], needle: str) -> None:
    """Validation runs on construction and names the field."""
    with pytest.raises(ConfigError) as info:
        ServerConfig(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_ServerConfig_accepts_a_real_super_digest_and_normalises() -> None:
    config = ServerConfig(
        super_digest=digest_id("super", "secret"),
        log_level="debug",
        handshake_timeout=3,
        four_letter_words=["ruok"],  # type: ignore[arg-type]
    )
    assert config.log_level == "DEBUG"
    assert config.handshake_timeout == 3.0 and isinstance(config.handshake_timeout, float)
    assert config.four_letter_words == ("ruok",)


def test_load_config_without_sources_gives_defaults() -> None:
    assert load_config() == ServerConfig()
    assert load_config(env={"PATH": "/bin", "HOME": "/root"}) == ServerConfig()


def test_load_config_precedence_overrides_then_env_then_file(tmp_path: Path) -> None:
    """overrides (CLI) > env > file > defaults, field by field."""
    path = write_toml(tmp_path, 'port = 1111\nhost = "0.0.0.0"\ntick_time = 100\n')
    env = {"COORD_PORT": "2222", "COORD_HOST": "10.0.0.1"}
    config = load_config(file=path, env=env, overrides={"port": 3333})
    assert config.port == 3333  # overrides beat env and file
    assert config.host == "10.0.0.1"  # env beats file
    assert config.tick_time == 100  # file beats the default
    assert config.data_dir == "coord-data"  # default


def test_load_config_file_accepts_kebab_case(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path, 'data-dir = "/var/lib/coord"\nfour-letter-words = ["ruok", "mntr"]\n'
    )
    config = load_config(file=path)
    assert config.data_dir == "/var/lib/coord"
    assert config.four_letter_words == ("ruok", "mntr")


def test_load_config_file_setting_a_key_twice_is_an_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'data-dir = "a"\ndata_dir = "b"\n')
    with pytest.raises(ConfigError, match="sets 'data_dir' twice"):
        load_config(file=path)


def test_load_config_unknown_file_key_is_rejected_with_suggestion(tmp_path: Path) -> None:
    """A typo in the file is an error naming the key, the file and the closest key."""
    path = write_toml(tmp_path, "prot = 2181\n")
    with pytest.raises(ConfigError) as info:
        load_config(file=path)
    message = str(info.value)
    assert "'prot'" in message
    assert str(path) in message
    assert "did you mean 'port'?" in message
    assert info.value.key == "prot"


def test_load_config_unknown_kebab_file_key_suggests_field(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "tick-tim = 100\n")
    with pytest.raises(ConfigError, match=r"'tick-tim'.*did you mean 'tick_time'"):
        load_config(file=path)


def test_load_config_file_nested_table_is_an_unknown_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[server]\nport = 1\n")
    with pytest.raises(ConfigError, match="unknown config key 'server'"):
        load_config(file=path)


def test_load_config_unknown_env_variable_is_rejected_with_suggestion() -> None:
    """Every COORD_* variable must name a field."""
    with pytest.raises(ConfigError) as info:
        load_config(env={"COORD_DATADIR": "/x"})
    message = str(info.value)
    assert "'COORD_DATADIR'" in message
    assert "environment" in message
    assert "did you mean 'COORD_DATA_DIR'?" in message


def test_load_config_env_names_must_be_upper_case() -> None:
    with pytest.raises(ConfigError, match="did you mean 'COORD_PORT'"):
        load_config(env={"COORD_port": "1"})


def test_load_config_unknown_key_without_close_match_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"valid keys: .*COORD_HOST"):
        load_config(env={"COORD_ZZZZZZZZZZZZZZ": "1"})


def test_load_config_unknown_override_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'max_frames'.*'max_frame'"):
        load_config(overrides={"max_frames": 1})


def test_load_config_converts_env_strings() -> None:
    """Env values are parsed to the field types: ints, floats, bools, lists, unset."""
    env = {
        "COORD_PORT": "0",
        "COORD_MAX_FRAME": "0x100000",
        "COORD_HANDSHAKE_TIMEOUT": "2.5",
        "COORD_EXTENDED_TYPES": "no",
        "COORD_FOUR_LETTER_WORDS": "ruok, srvr,mntr",
        "COORD_PLUGINS_DISABLED": "",
        "COORD_MIN_SESSION_TIMEOUT": "",
        "COORD_MAX_SESSION_TIMEOUT": "90000",
        "COORD_DATA_DIR": "/data",
    }
    config = load_config(env=env)
    assert config.port == 0
    assert config.max_frame == 0x100000
    assert config.handshake_timeout == 2.5
    assert config.extended_types is False
    assert config.four_letter_words == ("ruok", "srvr", "mntr")
    assert config.plugins_disabled == ()
    assert config.min_session_timeout is None
    assert config.max_session_timeout == 90000
    assert config.data_dir == "/data"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("true", True), ("1", True), ("YES", True), ("on", True)],
        *[("false", False), ("0", False), ("No", False), ("off", False)],
    ],
)
def test_convert_value_parses_booleans(text: str, expected: bool) -> None:
    assert convert_value("extended_types", text, source="test") is expected


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("port", "eighty", "port must be an integer, not 'eighty'"),
        ("extended_types", "maybe", "extended_types must be a boolean"),
        ("handshake_timeout", "soon", "handshake_timeout must be a number"),
    ],
)
def test_load_config_rejects_unconvertible_env_values(key: str, value: str, needle: str) -> None:
    name = f"COORD_{key.upper()}"
    with pytest.raises(ConfigError) as info:
        load_config(env={name: value})
    assert needle in str(info.value)
    assert name in str(info.value)


def test_load_config_rejects_wrongly_typed_toml_values(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 1.5\n")
    with pytest.raises(ConfigError, match=r"port must be an integer, not 1\.5 \(from config file"):
        load_config(file=path)
    path = write_toml(tmp_path, "extended_types = 1\n")
    with pytest.raises(ConfigError, match="extended_types must be a boolean"):
        load_config(file=path)


def test_load_config_validation_error_names_the_source(tmp_path: Path) -> None:
    """A bad value is traced back to the source that set it."""
    path = write_toml(tmp_path, "port = 99999\n")
    with pytest.raises(ConfigError, match=r"port must be between .*\(from config file") as info:
        load_config(file=path)
    assert info.value.key == "port"
    with pytest.raises(ConfigError, match=r"\(from the environment\)"):
        load_config(env={"COORD_TICK_TIME": "-5"})


def test_load_config_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(file=tmp_path / "missing.toml")
    path = write_toml(tmp_path, "port = = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(file=path)


def test_ConfigError_is_a_ValueError() -> None:
    assert issubclass(ConfigError, ValueError)


def test_load_config_ignores_COORD_FAILPOINTS_in_the_environment() -> None:
    """COORD_FAILPOINTS drives test machinery; it is not a setting and not an error."""
    config = load_config(env={"COORD_FAILPOINTS": "after-log-write", "COORD_PORT": "2999"})
    assert config.port == 2999
