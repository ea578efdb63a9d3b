"""``coord config from-zoocfg``: a zoo.cfg becomes a coord config that passes the check.

Nothing is dropped silently: every key of the input shows up in the output, as a setting,
as ``# ignored: <why>`` or as ``# not understood``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from coord.cli import main
from coord.testing._zookeeper import ZooKeeperProcess
from coord.testing._zookeeper_ensemble import ZooKeeperEnsemble, _Member
from coord.tools._config_check import check_config
from coord.tools._zoocfg import ZooCfgError, convert_zoocfg, parse_properties

HAND_WRITTEN = """\
# production ensemble
tickTime=2000
initLimit=10
syncLimit=5
dataDir={data}
clientPort=2181
clientPortAddress=0.0.0.0
maxClientCnxns=100
minSessionTimeout=4000
maxSessionTimeout=60000
4lw.commands.whitelist=srvr, ruok, mntr, gtmk
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
preAllocSize=65536
secureClientPort=2281
ssl.keyStore.location=/etc/zk/keystore.jks
ssl.keyStore.password=changeit
ssl.trustStore.location=/etc/zk/truststore.jks
ssl.clientAuth=want
reconfigEnabled=true
admin.enableServer=true
admin.serverPort=8081
readonlymode.enabled=true
superDigest=super:lK75jTNcA+U9vtVEw5vB51mj/w4=
quorum.auth.enableSasl=false
fancyNewOption=42
dynamicConfigFile={dynamic}
"""
DYNAMIC = """\
server.1=zk1.example:2888:3888;2181
server.2=zk2.example:2888:3888:participant;0.0.0.0:2181
server.3=zk3.example:2888:3888:observer;zk3.example:2182
version=100000000
"""


def _keys(text: str) -> list[str]:
    return [key for _n, key, _v in parse_properties(text, "test")]


@pytest.fixture
def hand_written(tmp_path: Path) -> Path:
    data = tmp_path / "zkdata"
    data.mkdir()
    (data / "myid").write_text("2\n")
    dynamic = tmp_path / "zoo.cfg.dynamic"
    dynamic.write_text(DYNAMIC)
    zoo_cfg = tmp_path / "zoo.cfg"
    zoo_cfg.write_text(HAND_WRITTEN.format(data=data, dynamic=dynamic))
    return zoo_cfg


def _check(tmp_path: Path, toml_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The output passes coord config check (data_dir defaults to ./coord-data)."""
    out = tmp_path / "coord.toml"
    out.write_text(toml_text)
    monkeypatch.chdir(tmp_path)
    result = check_config(out)
    assert result.ok, result.problems


def test_hand_written_zoo_cfg_with_dynamic_file_and_myid(
    hand_written: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = convert_zoocfg(hand_written)
    config = tomllib.loads(result.toml)
    assert config["port"] == 2181 and config["host"] == ""
    assert config["tick_time"] == 2000 and config["max_client_connections"] == 100
    assert (config["min_session_timeout"], config["max_session_timeout"]) == (4000, 60000)
    assert config["four_letter_words"] == ["srvr", "ruok", "mntr"]
    assert config["read_only_mode"] is True
    assert config["super_digest"] == "super:lK75jTNcA+U9vtVEw5vB51mj/w4="
    assert config["server_id"] == 2  # from dataDir/myid
    assert config["members"] == [
        "1=zk1.example:2888;zk1.example:2181",
        "2=zk2.example:2888;zk2.example:2181",  # a wildcard client host: the member's host
        "3=zk3.example:2888:observer;zk3.example:2182",
    ]
    assert len(config["peer_secret"]) >= 24
    assert "data_dir" not in config  # a different format: a comment says what to do
    assert "coord export" in result.toml and "coord import" in result.toml
    # TLS needs PEM files: commented out, with the conversion commands.
    assert "secure_port" not in config and "# secure_port = 2281" in result.toml
    assert "keytool -importkeystore" in result.toml and "openssl pkcs12" in result.toml
    assert '# tls_client_auth = "want"' in result.toml
    assert "changeit" not in result.toml
    assert re.search(r"# ignored: autopurge\.purgeInterval=1 \(.+\)", result.toml)
    assert re.search(r"# ignored: quorum\.auth\.enableSasl=false \(.+\)", result.toml)
    assert "# not understood, left out: fancyNewOption=42" in result.toml
    assert result.unknown == ["fancyNewOption"]
    assert "gtmk" in result.toml  # the dropped four-letter word is named
    _check(tmp_path, result.toml, monkeypatch)


def test_every_input_key_appears_in_the_output(hand_written: Path) -> None:
    """Nothing is dropped silently."""
    output = convert_zoocfg(hand_written).toml
    for key in _keys(hand_written.read_text()) + _keys(DYNAMIC):
        assert key in output or key.startswith("server."), key
    for sid in (1, 2, 3):
        assert f'"{sid}=zk{sid}.example:2888' in output


def test_reconfig_and_admin_port_only_when_coord_has_them(hand_written: Path) -> None:
    from coord.server._config import _FIELDS

    config = tomllib.loads(convert_zoocfg(hand_written).toml)
    text = convert_zoocfg(hand_written).toml
    for field, zk_key, value in (
        ("reconfig_enabled", "reconfigEnabled", True),
        ("admin_port", "admin.serverPort", 8081),
    ):
        if field in _FIELDS:
            assert config[field] == value
        else:
            assert field not in config
            assert f"# ignored: {zk_key}" in text or zk_key in text


def test_peer_secret_file_option(hand_written: Path) -> None:
    config = tomllib.loads(convert_zoocfg(hand_written, peer_secret_file="/etc/coord/s").toml)
    assert config["peer_secret_file"] == "/etc/coord/s" and "peer_secret" not in config


def test_zoo_cfg_written_by_ZooKeeperProcess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file coord.testing's ZooKeeperProcess runs ZooKeeper with (no JVM needed)."""
    process = ZooKeeperProcess(tick_time=500, extra_config={"4lw.commands.whitelist": "*"})
    zk_dir = tmp_path / "zk"
    (zk_dir / "data").mkdir(parents=True)
    zoo_cfg = zk_dir / "zoo.cfg"
    zoo_cfg.write_text("\n".join(process._config_lines(21810, zk_dir)) + "\n")
    result = convert_zoocfg(zoo_cfg)
    config = tomllib.loads(result.toml)
    assert config["port"] == 21810 and config["host"] == "127.0.0.1"
    assert config["tick_time"] == 500 and config["four_letter_words"] == ["*"]
    assert "members" not in config and "server_id" not in config  # standalone, no myid
    _check(tmp_path, result.toml, monkeypatch)


def test_zoo_cfg_written_by_ZooKeeperEnsemble(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files coord.testing's ZooKeeperEnsemble writes for its members (and myid),
    written by its own code without launching the JVMs."""
    ensemble = ZooKeeperEnsemble(3, proxied=False)
    ensemble._state.tmpdir = tmp_path
    for index in range(3):
        directory = tmp_path / f"member-{index + 1}"
        (directory / "data").mkdir(parents=True)
        (directory / "data" / "myid").write_text(f"{index + 1}\n")
        ports = [30000 + 10 * index + k for k in range(3)]
        ensemble._state.members.append(_Member(index, directory, *ports))
    for member in ensemble._state.members:
        ensemble._write_config(member)
    outputs = [convert_zoocfg(m.directory / "zoo.cfg") for m in ensemble._state.members]
    for index, result in enumerate(outputs):
        config = tomllib.loads(result.toml)
        assert config["server_id"] == index + 1
        assert config["port"] == 30000 + 10 * index
        own = f"{index + 1}=zk{index + 1}:{30001 + 10 * index};zk{index + 1}:{30000 + 10 * index}"
        assert config["members"][index] == own
        assert len(config["members"]) == 3
        assert "# ignored: initLimit=" in result.toml
        _check(tmp_path, result.toml, monkeypatch)


def test_cli_writes_the_file_and_refuses_to_overwrite(
    hand_written: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.toml"
    assert main(["config", "from-zoocfg", str(hand_written), "-o", str(out)]) == 0
    assert "coord config check" in capsys.readouterr().err
    assert tomllib.loads(out.read_text())["server_id"] == 2
    assert main(["config", "from-zoocfg", str(hand_written), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["config", "from-zoocfg", str(hand_written), "-o", str(out), "--force"]) == 0
    assert main(["config", "from-zoocfg", str(hand_written)]) == 0
    assert capsys.readouterr().out.startswith("# converted from")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tickTime=2000\njust words\n", "zoo.cfg:2: expected key=value, got 'just words'"),
        ("clientPort=21x81\n", "zoo.cfg:1: clientPort must be an integer, not '21x81'"),
        ("tickTime=1\ntickTime=2\n", "zoo.cfg:2: tickTime is set twice (first on line 1)"),
        ("clientPort=2181\nserver.1=zk1:2888\n", "server.1='zk1:2888' is not of the form"),
        ("clientPort=2181\nserver.x=zk1:2888:3888\n", "server.x: the id must be 1..255"),
        ("server.1=zk1:2888:3888\nserver.2=zk2:2888:3888\n", "has no client port"),
        ("readonlymode.enabled=maybe\n", "readonlymode.enabled must be true or false"),
        ("dynamicConfigFile=/nonexistent/zoo.dyn\n", "dynamicConfigFile '/nonexistent/zoo.dyn'"),
    ],
)
def test_malformed_input_is_a_clear_error_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    zoo_cfg = tmp_path / "zoo.cfg"
    zoo_cfg.write_text(text)
    with pytest.raises(ZooCfgError, match=re.escape(message)):
        convert_zoocfg(zoo_cfg)
    out = tmp_path / "coord.toml"
    assert main(["config", "from-zoocfg", str(zoo_cfg), "-o", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing written


def test_bad_myid_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("one\n")
    zoo_cfg = tmp_path / "zoo.cfg"
    zoo_cfg.write_text(f"dataDir={tmp_path / 'data'}\n")
    with pytest.raises(ZooCfgError, match=r"myid must be a number 1\.\.255, not 'one'"):
        convert_zoocfg(zoo_cfg)


def test_missing_zoo_cfg_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["config", "from-zoocfg", str(tmp_path / "zoo.cfg")]) == 2
