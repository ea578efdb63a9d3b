"""Ensemble configuration: member strings and the settings an ensemble needs."""

from __future__ import annotations

import pytest

from coord.server._config import ConfigError, ServerConfig, load_config
from coord.server._members import Member, MemberSpecError, parse_member, parse_members

THREE = (
    "1=127.0.0.1:2888;127.0.0.1:2181",
    "2=127.0.0.1:2889;127.0.0.1:2182",
    "3=127.0.0.1:2890:observer;127.0.0.1:2183",
)


def test_member_strings_parse_and_round_trip() -> None:
    members = parse_members(THREE)
    assert members[1] == Member(1, ("127.0.0.1", 2888), ("127.0.0.1", 2181), "participant")
    assert members[3].role == "observer" and not members[3].voter
    assert [parse_member(m.spec()) for m in members.values()] == list(members.values())
    assert parse_member("7=[::1]:2888;[::1]:2181").peer == ("::1", 2888)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("x=127.0.0.1:2888;127.0.0.1:2181", "needs an id"),
        ("0=127.0.0.1:2888;127.0.0.1:2181", "needs an id"),
        ("300=127.0.0.1:2888;127.0.0.1:2181", "needs an id"),
        ("1=127.0.0.1:2888", "no ';<client address>'"),
        ("1=127.0.0.1;127.0.0.1:2181", "bad peer address"),
        ("1=127.0.0.1:2888;127.0.0.1:99999", "bad client address"),
    ],
)
def test_bad_member_strings_say_what_is_expected(spec: str, message: str) -> None:
    with pytest.raises(MemberSpecError, match=message) as info:
        parse_member(spec)
    assert "<id>=<peer host>:<peer port>" in str(info.value)


def test_duplicate_ids_and_no_voter_are_refused() -> None:
    with pytest.raises(MemberSpecError, match="appears twice"):
        parse_members((THREE[0], THREE[0]))
    with pytest.raises(MemberSpecError, match="participant"):
        parse_members((THREE[2],))


def test_config_requires_own_entry_and_a_secret() -> None:
    with pytest.raises(ConfigError, match="no entry for this server"):
        ServerConfig(server_id=9, members=THREE, peer_secret="s")
    with pytest.raises(ConfigError, match="peer_secret"):
        ServerConfig(server_id=1, members=THREE)
    with pytest.raises(ConfigError, match="members is invalid"):
        ServerConfig(server_id=1, members=("1=nope",), peer_secret="s")
    with pytest.raises(ConfigError, match="election_timeout"):
        ServerConfig(heartbeat_interval=100, election_timeout=150)
    config = ServerConfig(server_id=2, members=THREE, peer_secret="s")
    assert config.ensemble and config.read_peer_secret() == b"s"
    assert not ServerConfig().ensemble
    # One member alone is a standalone server; it needs no secret.
    assert not ServerConfig(members=(THREE[0],)).ensemble


def test_members_from_toml_env_and_secret_file(tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    toml = tmp_path / "coord.toml"
    lines = ", ".join(f'"{m}"' for m in THREE)
    toml.write_text(f'server_id = 2\nmembers = [{lines}]\npeer_secret_file = "{secret}"\n')
    config = load_config(file=toml, env={})
    assert config.members == THREE and config.read_peer_secret() == b"from-file"
    env = {"COORD_MEMBERS": ",".join(THREE), "COORD_SERVER_ID": "3", "COORD_PEER_SECRET": "e"}
    config = load_config(env=env)
    assert config.server_id == 3 and config.members == THREE
    del env["COORD_PEER_SECRET"]
    missing = load_config(env={**env, "COORD_PEER_SECRET_FILE": str(tmp_path / "no")})
    with pytest.raises(ConfigError, match="cannot be read"):
        missing.read_peer_secret()
