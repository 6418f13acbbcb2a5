"""The private Mosquitto broker: authentication, ACL, reload on SIGHUP, persistence."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from server.devstack.base import DevstackError, free_port
from server.devstack.mosquitto import AclFile, MosquittoBroker
from tests.infra.conftest import MqttClient

DOWN = "crewline/v1/devices/{}/down/orders"
UP = "crewline/v1/devices/{}/up/events"


@pytest.fixture
def broker(service_dir: Path):
    try:
        b = MosquittoBroker(service_dir / "mqtt", port=free_port())
    except DevstackError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    b.start()
    clients: list[MqttClient] = []
    b.clients = clients  # type: ignore[attr-defined]
    try:
        yield b
    finally:
        for c in clients:
            c.close()
        b.destroy()


def client(broker: MosquittoBroker, username: str | None, password: str | None,
           client_id: str | None = None) -> MqttClient:
    c = MqttClient(broker.bound_port, username, password, client_id)
    broker.clients.append(c)  # type: ignore[attr-defined]
    return c


def server(broker: MosquittoBroker) -> MqttClient:
    return client(broker, broker.server_user, broker.server_password)


def test_generated_files(broker: MosquittoBroker) -> None:
    conf = broker.conf.read_text()
    assert f"listener {broker.bound_port} 127.0.0.1" in conf
    assert "allow_anonymous false" in conf
    assert "persistence true" in conf
    for secret in (broker.password_file, broker.acl_file, broker.state):
        assert secret.stat().st_mode & 0o077 == 0, f"{secret} readable by others"
    assert broker.server_password not in broker.password_file.read_text()  # hashed
    assert broker.url() == (f"mqtt://crewline-server:{broker.server_password}"
                            f"@127.0.0.1:{broker.bound_port}")


def test_credentials_are_required(broker: MosquittoBroker) -> None:
    srv = server(broker)
    assert not srv.connect().is_failure
    assert srv.subscribe(UP.format("+")).value == 1
    assert client(broker, broker.server_user, "wrong").connect().is_failure
    assert client(broker, "nobody", "whatever").connect().is_failure
    assert client(broker, None, None).connect().is_failure  # anonymous


def test_server_and_device_exchange_messages(broker: MosquittoBroker) -> None:
    broker.add_user("van-7", "pw-van-7")
    srv, van = server(broker), client(broker, "van-7", "pw-van-7")
    assert not srv.connect().is_failure and not van.connect().is_failure
    assert srv.subscribe("crewline/v1/devices/+/up/#").value == 1
    assert van.subscribe(DOWN.format("van-7")).value == 1

    srv.publish(DOWN.format("van-7"), b"order 1")
    got = van.next_message()
    assert got is not None and got.payload == b"order 1"
    van.publish(UP.format("van-7"), b"arrived")
    got = srv.next_message()
    assert got is not None and (got.topic, got.payload) == (UP.format("van-7"), b"arrived")


def test_acl_keeps_each_device_to_its_own_topics(broker: MosquittoBroker) -> None:
    broker.add_user("van-a", "pw-a")
    broker.add_user("van-b", "pw-b")
    srv = server(broker)
    van_a, van_b = client(broker, "van-a", "pw-a"), client(broker, "van-b", "pw-b")
    for c in (srv, van_a, van_b):
        assert not c.connect().is_failure
    assert srv.subscribe("crewline/v1/devices/+/up/#").value == 1
    assert van_b.subscribe(DOWN.format("van-b")).value == 1

    # Reading another device's orders gets nothing. (Mosquitto 2.0 may still grant the
    # SUBACK: its read ACL is applied to each message delivered, which is what matters.)
    van_a.subscribe(DOWN.format("van-b"))
    van_a.subscribe("crewline/#")
    srv.publish(DOWN.format("van-b"), b"for b only")
    got = van_b.next_message()
    assert got is not None and got.payload == b"for b only"
    assert van_a.next_message(timeout=1) is None

    # publishing as another device, or to a downlink, never reaches the server
    van_a.publish(UP.format("van-b"), b"forged")
    van_a.publish(DOWN.format("van-b"), b"forged order")
    assert van_b.next_message(timeout=1) is None
    van_a.publish(UP.format("van-a"), b"genuine")
    got = srv.next_message()
    assert got is not None and got.payload == b"genuine"
    assert srv.next_message(timeout=0.5) is None


def test_users_are_added_and_removed_with_a_reload(broker: MosquittoBroker) -> None:
    broker.add_user("van-c", "first", topics=[("read", "crewline/v1/broadcast/#")])
    assert ("read", "crewline/v1/broadcast/#") in broker.read_acl().users["van-c"]
    c = client(broker, "van-c", "first")
    assert not c.connect().is_failure
    assert not c.subscribe("crewline/v1/broadcast/outages").is_failure

    broker.add_user("van-c", "second")  # password change
    time.sleep(0.3)  # SIGHUP is asynchronous
    assert client(broker, "van-c", "first").connect().is_failure
    assert not client(broker, "van-c", "second").connect().is_failure

    broker.remove_user("van-c")
    time.sleep(0.3)
    assert "van-c" not in broker.read_acl().users
    assert client(broker, "van-c", "second").connect().is_failure
    with pytest.raises(ValueError):
        broker.remove_user(broker.server_user)
    with pytest.raises(ValueError):
        broker.add_user("van/#", "x")


def test_persistent_session_survives_a_broker_restart(broker: MosquittoBroker) -> None:
    broker.add_user("van-p", "pw-p")
    van = client(broker, "van-p", "pw-p", client_id="handset-van-p")
    assert not van.connect(clean_start=False, session_expiry=3600).is_failure
    assert van.subscribe(DOWN.format("van-p")).value == 1
    van.close()

    srv = server(broker)
    assert not srv.connect().is_failure
    srv.publish(DOWN.format("van-p"), b"queued while away", qos=1)
    srv.close()

    port, password_file = broker.bound_port, broker.password_file.read_text()
    broker.stop()
    assert not broker.is_running()
    broker.start()
    assert broker.bound_port == port
    assert broker.password_file.read_text() == password_file  # not regenerated

    back = client(broker, "van-p", "pw-p", client_id="handset-van-p")
    rc = back.connect(clean_start=False, session_expiry=3600)
    assert not rc.is_failure
    got = back.next_message()
    assert got is not None and got.payload == b"queued while away"


def test_lifecycle_is_idempotent(broker: MosquittoBroker) -> None:
    pid = broker.pid()
    assert broker.start() == broker.url() and broker.pid() == pid  # already running
    broker.kill()
    assert not broker.is_running()
    broker.stop()  # nothing to stop
    broker.start()
    assert broker.is_running() and broker.pid() != pid


def test_acl_file_round_trips() -> None:
    text = ("# comment\npattern read a/%u/down/#\npattern write a/%u/up/#\n\n"
            "user srv\ntopic readwrite a/#\ntopic b/#\n")
    acl = AclFile.parse(text)
    assert acl.patterns == [("read", "a/%u/down/#"), ("write", "a/%u/up/#")]
    assert acl.users == {"srv": [("readwrite", "a/#"), ("readwrite", "b/#")]}
    assert AclFile.parse(acl.render()) == acl
    with pytest.raises(ValueError):
        AclFile.parse("bogus line\n")


def test_deploy_acl_template_matches_the_devstack_policy() -> None:
    from server.devstack.mosquitto import DEVICE_PATTERNS, SERVER_TOPICS, SERVER_USER
    from tests.infra.conftest import REPO_ROOT

    template = AclFile.parse((REPO_ROOT / "deploy/mosquitto/acl.template").read_text())
    assert template == AclFile(list(DEVICE_PATTERNS), {SERVER_USER: list(SERVER_TOPICS)})
