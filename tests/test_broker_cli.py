"""`twitchwatch broker setup` on the harness's RabbitMQ: what it says, idempotence, and its errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.rabbitmq import RabbitServer
from twitchwatch.cli import main
from twitchwatch.config import ConfigError, load_settings
from twitchwatch.processing.amqp import UNASSIGNED, partition_of, queue_name


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key in [k for k in os.environ if k.startswith("TWITCHWATCH_")]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_setup_says_what_it_did_and_is_idempotent(
    rabbitmq: RabbitServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url_file = tmp_path / "amqp_url"
    url_file.write_text(rabbitmq.vhost("cli-setup") + "\n")
    _env(monkeypatch, TWITCHWATCH_AMQP_URL_FILE=str(url_file))  # a secret, as compose mounts it
    users = tmp_path / "wearers.txt"
    users.write_text("# wearers\ncli-bob\n\ncli-carol\n")
    assert (
        main(["broker", "setup", "--partitions", "3", "--user", "cli-alice", "--users-file", str(users)]) == 0
    )
    out = capsys.readouterr().out
    assert "rabbit-s3cret" not in out  # the URL is shown without its password
    for p in range(3):
        assert f"queue {queue_name(p)}" in out
    assert f"queue {UNASSIGNED}" in out
    for user in ("cli-alice", "cli-bob", "cli-carol"):
        assert f"bound user {user} -> {queue_name(partition_of(user, 3))}" in out
    assert main(["broker", "setup", "--partitions", "3"]) == 0
    again = capsys.readouterr().out
    assert "created" not in again
    assert f"kept queue {queue_name(2)} (already there)" in again
    assert "no users bound" in again
    # Another count than the layout's: users bound to a queue of each (every frame twice), and the queues
    # past a worker's count never consumed — refused, saying what to set.
    for other in ("4", "2"):
        assert main(["broker", "setup", "--partitions", other, "--user", "cli-dave"]) == 1
        err = capsys.readouterr().err
        assert "partition queues than" in err
        assert "TWITCHWATCH_AMQP_PARTITIONS" in err
    assert main(["broker", "setup", "--partitions", "0"]) == 1  # was taken as the default, 16
    assert "partitions: 0 is not within 1..1000" in capsys.readouterr().err
    # A vhost the broker does not have: said so, not "Expected one of ['Connection.OpenOk']" as a bug
    _env(monkeypatch, TWITCHWATCH_AMQP_URL=rabbitmq.amqp_url.rstrip("/") + "/no-such-vhost")
    assert main(["broker", "setup", "--partitions", "3"]) == 1
    assert "does vhost 'no-such-vhost' exist?" in capsys.readouterr().err


def test_setup_errors_name_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch)
    assert main(["broker", "setup"]) == 2
    assert "TWITCHWATCH_AMQP_URL is not set" in capsys.readouterr().err
    _env(monkeypatch, TWITCHWATCH_AMQP_URL="http://example")
    with pytest.raises(ConfigError, match="TWITCHWATCH_AMQP_URL"):
        load_settings()
    _env(monkeypatch, TWITCHWATCH_AMQP_URL="amqp://u:p@127.0.0.1:99999/")  # surfaced later as a bug
    with pytest.raises(ConfigError, match=r"TWITCHWATCH_AMQP_URL.*the port"):
        load_settings()
    _env(monkeypatch, TWITCHWATCH_AMQP_URL="amqp://u:p@127.0.0.1:1/", TWITCHWATCH_AMQP_SLOT="2/2")
    with pytest.raises(ConfigError, match="TWITCHWATCH_AMQP_SLOT"):
        load_settings()
    _env(monkeypatch, TWITCHWATCH_AMQP_URL="amqp://u:p@127.0.0.1:1/")
    users = tmp_path / "users.txt"
    users.write_text("# wearers\nok\n\nnot a user!\n")
    assert main(["broker", "setup", "--users-file", str(users)]) == 2
    assert f"--users-file {users} line 4" in capsys.readouterr().err
