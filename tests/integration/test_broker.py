"""The shipped broker configuration (mosquitto/), checked against a real mosquitto.

Forbidden messages are shown never to arrive by publishing a marker afterwards
and waiting for it: the broker handles one connection's packets in order and
hands them to a subscriber in that order, so once the marker is in, anything
published before it would have been too.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from demo.broker import ROLES, Broker, MosquittoError, free_port, setup
from tests.conftest import collect, mqtt_client, publish_and_wait, wait_until
from tests.integration.conftest import BrokerFactory

SN = "SZCCKQRAIJBAH0002"

# What each role may publish, as topics below se3/{sn}/.
WRITABLE = {
    # and the deletes of device records it refuses
    "bridge": ["apps/app/devices/127.0.0.11/state", "devices/127.0.0.11/state", "bridge/report",
               "bridge/status"],
    "collector": [
        "devices/127.0.0.11/state",
        "gateway/hardware",
        "gateway/info",
        "gateway/metrics",
    ],
    "collector-gateway": ["collectors/gateway/status", "gateway/hardware", "gateway/info",
                          "gateway/metrics"],
    "collector-devices": ["collectors/devices/status", "devices/127.0.0.11/state"],
    "app": ["apps/app/status", "apps/app/devices/127.0.0.11/state"],
    "operator": ["config/report_url"],
    "console": ["config/report_url", "devices/127.0.0.11/state",
                "apps/app/devices/127.0.0.11/state"],
    "monitor": [],
    "debug": [],
}
WRITERS = [role for role, subs in WRITABLE.items() if subs]
EVERY_TOPIC = sorted({sub for subs in WRITABLE.values() for sub in subs})


def _topic(sub: str) -> str:
    return f"se3/{SN}/{sub}"


class TestAcl:
    def test_every_user_is_in_the_table(self) -> None:
        """The table above covers every broker user."""
        assert set(WRITABLE) == set(ROLES)

    @pytest.mark.parametrize("role", WRITERS)
    def test_role_writes_only_its_topics(self, broker: Broker, role: str) -> None:
        """A role's messages on its own topics arrive and are retained; all others vanish."""
        allowed = WRITABLE[role]
        forbidden = [sub for sub in EVERY_TOPIC if sub not in allowed]
        marker = _topic(allowed[-1])
        with collect(broker, "se3/#") as seen, mqtt_client(broker, role) as client:
            for sub in forbidden + allowed:
                publish_and_wait(client, _topic(sub), f"from {role}", retain=True)
            seen.wait_for_topic(marker)
        assert sorted(seen.topics()) == sorted(_topic(sub) for sub in allowed)

        # The retained set a newcomer gets holds only the allowed topics too.
        with collect(broker, "se3/#") as fresh, mqtt_client(broker, role) as client:
            publish_and_wait(client, marker, "live marker")
            fresh.wait_for_message(lambda m: m.payload == b"live marker")
        retained = {m.topic for m in fresh.messages if m.retain}
        assert sorted(retained) == sorted(_topic(sub) for sub in allowed)

    def test_app_cannot_write_gateway_bridge_or_config(self, broker: Broker) -> None:
        """The topics an app must never set (identity, bridge status, report URL) stay empty."""
        with collect(broker, "se3/#") as seen, mqtt_client(broker, "app") as app:
            for sub in ("gateway/info", "bridge/status", "config/report_url"):
                publish_and_wait(app, _topic(sub), "http://evil.invalid/", retain=True)
            publish_and_wait(app, _topic("apps/app/devices/127.0.0.11/state"), "marker")
            seen.wait_for_topic(_topic("apps/app/devices/127.0.0.11/state"))
        assert seen.topics() == {_topic("apps/app/devices/127.0.0.11/state")}

    def test_debug_cannot_write_at_all(self, broker: Broker) -> None:
        """Nothing the debug user publishes reaches anyone."""
        with collect(broker, "se3/#", role="monitor") as seen:
            with mqtt_client(broker, "debug") as debug:
                for sub in EVERY_TOPIC:
                    publish_and_wait(debug, _topic(sub), "from debug", retain=True)
            # The broker acknowledged (and dropped) each of them before this starts.
            with mqtt_client(broker, "operator") as operator:
                publish_and_wait(operator, _topic("config/report_url"), "marker")
            seen.wait_for_topic(_topic("config/report_url"))
        assert [m.payload for m in seen.messages] == [b"marker"]

    def test_a_collector_daemons_status_is_its_own(self, broker: Broker) -> None:
        """Only collector-devices writes collectors/devices/status: not the one-shot
        `collector` user, nor app or debug, whatever client id they ask for. (Before,
        `collector` could say `offline` there and take live cameras offline.)"""
        status = _topic("collectors/devices/status")
        with mqtt_client(broker, "collector-devices") as daemon:
            publish_and_wait(daemon, status, "online", retain=True)
        with collect(broker, "se3/#", role="monitor") as seen:
            for role in ("collector", "app", "debug", "collector-gateway"):
                with mqtt_client(broker, role, client_id=f"se3-collector-devices-{SN}") as client:
                    publish_and_wait(client, status, "offline", retain=True)
            with mqtt_client(broker, "collector-gateway") as marker:
                publish_and_wait(marker, _topic("collectors/gateway/status"), "online")
            seen.wait_for_topic(_topic("collectors/gateway/status"))
        assert [m.payload for m in seen.messages if m.topic == status] == [b"online"]

    def test_app_reads_nothing(self, broker: Broker) -> None:
        """An app is write-only: retained device records (ep_url may hold camera passwords)
        and the rest never reach its subscription."""
        with mqtt_client(broker, "collector") as collector:
            publish_and_wait(collector, _topic("gateway/info"), "{}", retain=True)
            publish_and_wait(collector, _topic("devices/127.0.0.11/state"),
                             '{"ep_url":"rtsp://u:p@cam/"}', retain=True)
        got: list[str] = []
        acked: list[int] = []
        with mqtt_client(broker, "app") as app:
            app.on_message = lambda _c, _u, msg: got.append(msg.topic)
            app.on_subscribe = lambda _c, _u, mid, _codes, _p: acked.append(mid)
            app.subscribe("se3/#", qos=0)
            # The broker sends a filter's retained messages before the SUBACK of a
            # later subscription on the same connection.
            _, fence = app.subscribe(_topic("bridge/fence"), qos=0)
            wait_until(lambda: fence in acked, what="the second SUBACK")
        assert got == []

    @pytest.mark.parametrize("role", WRITERS)
    def test_nobody_writes_under_another_serial(self, broker: Broker, role: str) -> None:
        """The ACL names the box's serial: records of made-up gateways are never stored."""
        mine = _topic(WRITABLE[role][-1])
        other = mine.replace(SN, "JUNK0001")
        with collect(broker, "#") as seen, mqtt_client(broker, role) as client:
            publish_and_wait(client, other, "x" * 1000, retain=True)
            publish_and_wait(client, mine, "marker", retain=True)
            seen.wait_for_topic(mine)
        assert other not in seen.topics()
        broker.stop()  # writes the database: what it holds is in there
        database = broker.db_path.read_bytes()
        assert mine.encode() in database
        assert b"JUNK0001" not in database


class TestAuthentication:
    def test_anonymous_is_refused(self, broker: Broker) -> None:
        """A client without a username cannot connect."""
        with pytest.raises(ConnectionRefusedError), mqtt_client(broker, None):
            pass

    def test_wrong_password_is_refused(self, broker: Broker) -> None:
        """A known user with a wrong password cannot connect."""
        with pytest.raises(ConnectionRefusedError), mqtt_client(broker, "debug", password="no"):
            pass

    @pytest.mark.parametrize("role", ROLES)
    def test_every_role_can_log_in(self, broker: Broker, role: str) -> None:
        """Each role's generated password works."""
        with mqtt_client(broker, role):
            pass


class TestListener:
    def test_only_loopback_listener_is_configured(self, broker: Broker) -> None:
        """The rendered conf has two listeners, both on 127.0.0.1, both without anonymous
        clients: the main one and the watchers'."""
        conf = broker.conf_path.read_text().splitlines()
        listeners = [line for line in conf if line.startswith(("listener", "port", "bind"))]
        assert listeners == [f"listener {broker.port} 127.0.0.1",
                             f"listener {broker.watch_port} 127.0.0.1"]
        assert conf.count("allow_anonymous false") == 2

    def test_other_loopback_address_is_refused(self, broker: Broker) -> None:
        """127.0.0.2 is loopback too, but the broker is not bound there."""
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
            pass
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", broker.port), timeout=5).close()

    def test_a_port_it_chose_and_found_taken_is_chosen_again(self, tmp_path: Path) -> None:
        """Another process took the chosen watch port before mosquitto bound it: the
        first start chooses again; a port the caller gave is never changed."""
        with socket.socket() as taker:
            taker.bind(("127.0.0.1", 0))
            taker.listen()
            taken = taker.getsockname()[1]
            given = free_port()
            broker = Broker(tmp_path / "mqtt", given)
            broker.watch_port = taken  # as if chosen free, then taken meanwhile
            with broker:
                assert (broker.port, broker.watch_port != taken) == (given, True)
                with mqtt_client(broker, "collector"):
                    pass
            fixed = Broker(tmp_path / "fixed", free_port(), watch_port=taken)
            with pytest.raises(MosquittoError, match="Address already in use"):
                fixed.start()


class TestFiles:
    def test_credentials_and_config_are_private(self, broker: Broker) -> None:
        """Every file the broker setup and run make is mode 0600, the directory 0700."""
        broker.stop()  # writes the database too
        names = {p.name for p in broker.dir.iterdir()}
        assert {"passwd", "acl", "mosquitto.conf", "mosquitto.db"} <= names
        assert {f"{role}.pass" for role in ROLES} <= names
        for path in [broker.dir, *broker.dir.rglob("*")]:
            mode = 0o700 if path.is_dir() else 0o600
            assert stat.S_IMODE(path.stat().st_mode) == mode, path

    def test_setup_again_keeps_passwords_and_rerenders(self, broker: Broker) -> None:
        """A second setup keeps every password and the passwd file; conf and acl follow args."""
        passwords = {role: broker.password(role) for role in ROLES}
        passwd = (broker.dir / "passwd").read_text()
        setup(broker.dir, port=broker.port + 1, prefix="other")
        assert {role: broker.password(role) for role in ROLES} == passwords
        assert (broker.dir / "passwd").read_text() == passwd
        assert f"listener {broker.port + 1} 127.0.0.1" in broker.conf_path.read_text()
        assert f"topic read other/{SN}/#" in (broker.dir / "acl").read_text()

    def test_passwords_are_hashed(self, broker: Broker) -> None:
        """The passwd file holds PBKDF2 hashes, never the passwords."""
        text = (broker.dir / "passwd").read_text()
        for role in ROLES:
            assert broker.password(role) not in text
            assert f"{role}:$7$" in text


def _db_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class TestPersistence:
    def test_retained_survives_clean_restart(self, broker: Broker) -> None:
        """stop() saves the database; the retained record is there after start()."""
        topic = _topic("gateway/info")
        with mqtt_client(broker, "collector") as client:
            publish_and_wait(client, topic, '{"gateway_ip":"127.0.0.1"}', retain=True)
        broker.stop()
        broker.start()
        with collect(broker, topic) as seen:
            message = seen.wait_for_topic(topic)
        assert message.retain
        assert message.payload == b'{"gateway_ip":"127.0.0.1"}'

    def test_retained_survives_kill_after_autosave(self, broker_factory: BrokerFactory) -> None:
        """After an autosave, a crash (SIGKILL) loses nothing retained."""
        broker = broker_factory(autosave_interval=1)
        topic = _topic("config/report_url")
        with mqtt_client(broker, "operator") as client:
            publish_and_wait(client, topic, "http://127.0.0.1:9528/DeviceStatus", retain=True)
        # mosquitto is single-threaded and rewrites the file by rename: a save that
        # began before the PUBACK has finished by now, so the next change includes it.
        before = _db_stamp(broker.db_path)
        wait_until(lambda: _db_stamp(broker.db_path) != before, timeout=15, what="an autosave")
        broker.kill()
        broker.start()
        with collect(broker, topic) as seen:
            message = seen.wait_for_topic(topic)
        assert message.payload == b"http://127.0.0.1:9528/DeviceStatus"

    def test_qos1_subscriber_gets_all_of_5000_retained(self, broker: Broker) -> None:
        """No replay cut at max_inflight + max_queued (1,020 with mosquitto's defaults)."""
        count = 5000
        topics = [_topic(f"devices/127.0.{i // 250}.{i % 250 + 1}/state") for i in range(count)]
        with mqtt_client(broker, "collector") as client:
            record = '{"ep_status":"online"}'
            infos = [client.publish(t, record, qos=1, retain=True) for t in topics]
            for info in infos:
                info.wait_for_publish(30)
            assert all(info.is_published() for info in infos)
        with collect(broker, f"se3/{SN}/devices/+/state", qos=1) as seen:
            got = seen.wait_for(lambda msgs: len(msgs) >= count, timeout=60)
        assert {m.topic for m in got} == set(topics)
        assert all(m.retain and m.qos == 1 for m in got)


class TestLimits:
    def _publish_until_dropped(self, broker: Broker, payloads: list[bytes]) -> int:
        """Publish retained records as the collector until the broker drops the connection;
        how many were acknowledged."""
        dropped = threading.Event()
        acked = 0
        with mqtt_client(broker, "collector") as client:
            client.on_disconnect = lambda *_args: dropped.set()
            client.reconnect_delay_set(60, 60)  # stay down once dropped
            for n, payload in enumerate(payloads):
                info = client.publish(_topic(f"devices/10.9.{n // 250}.{n % 250 + 1}/state"),
                                      payload, qos=1, retain=True)
                while not info.is_published() and not dropped.is_set():
                    dropped.wait(0.01)
                if dropped.is_set():
                    break
                acked += 1
        return acked

    def test_a_packet_far_over_the_largest_record_is_refused(self, broker: Broker) -> None:
        """100 kB (the bridge takes 16 KiB records) is refused at the door: the publisher
        is disconnected and nothing of it is stored."""
        assert self._publish_until_dropped(broker, [b"OVERSIZE" + b"z" * 100_000]) == 0
        broker.stop()
        assert b"OVERSIZE" not in broker.db_path.read_bytes()

    def test_a_record_the_bridge_refuses_for_size_still_arrives(self, broker: Broker) -> None:
        """Just over the bridge's 16 KiB the broker still passes it on, so the bridge's
        refusal (code size) is what the publisher hears about."""
        assert self._publish_until_dropped(broker, [b"x" * 17_000]) == 1

    def test_each_clients_queue_holds_the_bridges_replay_and_no_more(
            self, tmp_path: Path) -> None:
        """No memory_limit (at it mosquitto disconnects whoever it is serving, daemons
        included); a client's queue holds max_devices records and as many arrival notes
        (tests/integration/test_broker_load.py measures a flood against it)."""
        conf = setup(tmp_path / "q", free_port(), max_devices=500).read_text()
        assert "\nmemory_limit" not in conf
        assert "\nmax_queued_messages 2000\n" in conf
        assert "\nmax_connections 8\n" in conf  # the watchers' listener


class TestClientOptionFiles:
    def test_mosquitto_sub_and_pub_log_in_without_a_password_on_the_command_line(
        self, broker: Broker
    ) -> None:
        """XDG_CONFIG_HOME=DIR/clients/<user> gives mosquitto_pub and mosquitto_sub host, port,
        user and password from a 0600 file: the command line (and /proc) holds none."""
        pub_env = {**os.environ, "XDG_CONFIG_HOME": str(broker.dir / "clients" / "collector")}
        sub_env = {**os.environ, "XDG_CONFIG_HOME": str(broker.dir / "clients" / "debug")}
        topic = _topic("devices/127.0.0.31/state")
        pub = ["mosquitto_pub", "-q", "1", "-r", "-t", topic, "-m", "from the option file"]
        subprocess.run(pub, env=pub_env, check=True, timeout=10)
        sub = ["mosquitto_sub", "-t", topic, "-C", "1", "-W", "5"]
        done = subprocess.run(sub, env=sub_env, capture_output=True, text=True, timeout=10,
                              check=True)
        assert done.stdout.strip() == "from the option file"
        for argv in (pub, sub):
            assert not any(broker.password(role) in arg for role in ROLES for arg in argv)
        options = broker.dir / "clients" / "debug" / "mosquitto_sub"
        assert stat.S_IMODE(options.stat().st_mode) == 0o600
        assert f"-P {broker.password('debug')}" in options.read_text()


class TestAppSpaces:
    def test_each_app_writes_only_its_own_space(self, tmp_path: Path) -> None:
        """Two app users: each writes (and deletes) records and status in apps/<user>/ only;
        the other's space and the collectors' devices/ (a configured device's or any)
        are closed to it, for a record and for a delete."""
        with Broker(tmp_path / "apps", apps=("app", "app-door")) as broker:
            assert broker.password("app-door") != broker.password("app")
            mine = _topic("apps/app-door/devices/127.0.0.12/state")
            theirs = _topic("apps/app/devices/127.0.0.12/state")
            shared = _topic("devices/127.0.0.11/state")
            with mqtt_client(broker, "collector-devices") as collector:
                publish_and_wait(collector, shared, "from the collector", retain=True)
            with mqtt_client(broker, "app") as app:
                publish_and_wait(app, theirs, "from app", retain=True)
            with collect(broker, "se3/#") as seen:
                with mqtt_client(broker, "app-door") as door:
                    for topic in (theirs, shared, _topic("apps/app/status")):
                        publish_and_wait(door, topic, "from app-door", retain=True)
                        publish_and_wait(door, topic, "", retain=True)
                    publish_and_wait(door, _topic("apps/app-door/status"), "online", retain=True)
                    publish_and_wait(door, mine, "marker", retain=True)
                seen.wait_for_topic(mine)
            assert {m.topic: m.payload for m in seen.messages} == {
                shared: b"from the collector", theirs: b"from app",  # the retained replay
                _topic("apps/app-door/status"): b"online", mine: b"marker"}

    def test_an_app_user_is_app_or_app_dash_name(self, tmp_path: Path) -> None:
        """Any other name could share a collector's status name: setup refuses it."""
        with pytest.raises(MosquittoError, match="an app user is `app` or `app-NAME`"):
            setup(tmp_path / "bad", free_port(), apps=("gateway",))


class TestWatchers:
    """README's Debugging lines, as written, in three windows at once."""

    @staticmethod
    def debugging_lines() -> tuple[str, list[str]]:
        """The `sub()` definition and the `sub ...` lines of README.md's Debugging block."""
        readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
        block = readme.split("## Debugging", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
        lines = block.splitlines()
        define = next(line for line in lines if line.startswith("sub() {"))
        return define, [line for line in lines if line.startswith("sub -t")]

    def test_three_windows_each_get_every_event(self, broker: Broker, tmp_path: Path) -> None:
        """Three shells run README's `sub` lines against one broker (var/mqtt is its
        directory): none pushes another off, and each gets every event of its topics, while
        a fourth, short one comes and goes."""
        define, subs = self.debugging_lines()
        errors = next(line for line in subs if "bridge/errors" in line)
        reports = next(line for line in subs if "bridge/report" in line)
        status = next(line for line in subs if "bridge/status" in line)
        (tmp_path / "var").mkdir()
        (tmp_path / "var" / "mqtt").symlink_to(broker.dir)
        windows = [Window(define, line, tmp_path) for line in (errors, reports, errors)]
        try:
            with mqtt_client(broker, "bridge") as bridge:
                # Each window is subscribed once a marker from the bridge reaches it.
                def marked() -> bool:
                    for topic in ("errors", "report"):
                        bridge.publish(f"se3/{SN}/bridge/{topic}", "marker", qos=1)
                    return all(w.lines_after("marker") is not None for w in windows)
                wait_until(marked, what="every window subscribed")
                for n in range(50):
                    bridge.publish(f"se3/{SN}/bridge/errors", f"error {n}", qos=1)
                    bridge.publish(f"se3/{SN}/bridge/report", f"report {n}", qos=1)
                publish_and_wait(bridge, f"se3/{SN}/bridge/status", "online", retain=True)
                done = subprocess.run(["bash", "-c", f"{define}\n{status.split('#')[0]}"],
                                      cwd=tmp_path, capture_output=True, text=True,
                                      timeout=30, check=False)
                assert f"se3/{SN}/bridge/status online" in done.stdout, done.stderr
                for topic in ("errors", "report"):
                    publish_and_wait(bridge, f"se3/{SN}/bridge/{topic}", "end", qos=1)
                wait_until(lambda: all("end" in (w.lines_after("marker") or [""])[-1]
                                       for w in windows), what="the end in every window")
        finally:
            for window in windows:
                window.close()
        for window, kind in zip(windows, ("errors error", "report report", "errors error"),
                                strict=True):
            assert window.lines_after("marker") == [
                *(f"se3/{SN}/bridge/{kind} {n}" for n in range(50)),
                f"se3/{SN}/bridge/{kind.split()[0]} end"]
        assert "already connected" not in broker.log_text()  # nobody pushed off


    @staticmethod
    def readme_tool_line(broker: Broker, tmp_path: Path, command: str, extra: str = "") -> str:
        """README's Debugging line running `se3-bridge COMMAND`, and in `tmp_path` what it
        reads: var/mqtt (the broker's) and its config, [mqtt] as config/demo.toml has it
        (`monitor`, `watch_port`)."""
        readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
        block = readme.split("## Debugging", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
        line = next(line for line in block.splitlines()
                    if f"se3-bridge {command}" in line).split("#")[0]
        config = line.split("SE3_CONFIG=", 1)[1].split()[0]  # var/demo.toml
        (tmp_path / "var").mkdir()
        (tmp_path / "var" / "mqtt").symlink_to(broker.dir)
        (tmp_path / ".venv").symlink_to(Path(__file__).parents[2] / ".venv")
        (tmp_path / config).write_text(
            f'[gateway]\nsn = "{SN}"\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
            f'watch_port = {broker.watch_port}\n'
            'username = "monitor"\npassword_file = "var/mqtt/monitor.pass"\n' + extra,
            encoding="utf-8")
        return line

    def test_three_snapshots_at_once(self, broker: Broker, tmp_path: Path) -> None:
        """README's `se3-bridge snapshot` line, as written, in three windows at the same
        moment (all as `monitor`): each prints the payload."""
        line = self.readme_tool_line(broker, tmp_path, "snapshot")
        with mqtt_client(broker, "collector") as collector:
            publish_and_wait(collector, f"se3/{SN}/gateway/info", GATEWAY_INFO, retain=True)
        windows = [subprocess.Popen(["bash", "-c", line], cwd=tmp_path, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for _ in range(3)]
        answers = [window.communicate(timeout=120) for window in windows]
        for window, (out, err) in zip(windows, answers, strict=True):
            assert window.returncode == 0, err
            assert '"gateway_name": "box"' in out or '"gateway_name":"box"' in out, out

    def test_three_status_windows_at_once(self, broker: Broker, tmp_path: Path) -> None:
        """README's `se3-bridge status` line in three windows, each watching the bridge's
        deliveries for seconds at the same time: none pushes another off (on the main
        port, all three are `monitor` and take the session from each other throughout)."""
        line = self.readme_tool_line(broker, tmp_path, "status",
                                     "[platform]\ninterval = 4.0\n"  # each watches 9 s
                                     'report_url = "http://127.0.0.1:9/DeviceStatus"\n')
        with mqtt_client(broker, "bridge") as bridge:  # online: status waits for deliveries
            publish_and_wait(bridge, f"se3/{SN}/bridge/status", "online", retain=True)
        with mqtt_client(broker, "collector") as collector:
            publish_and_wait(collector, f"se3/{SN}/gateway/info", GATEWAY_INFO, retain=True)
        windows = [subprocess.Popen(["bash", "-c", line], cwd=tmp_path, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for _ in range(3)]
        answers = [window.communicate(timeout=120) for window in windows]
        for out, err in answers:
            assert "disconnected from broker unexpectedly" not in err, err
            assert "(watched 9 s)" in out, out
            assert f"gateway {SN} on broker 127.0.0.1:{broker.watch_port}" in out, out
        assert "already connected" not in broker.log_text()


GATEWAY_INFO = ('{"gateway_ip":"192.168.1.251","gateway_name":"box","dev_sno":"ZKZC1",'
                '"sw_version":"V1"}')


class Window:
    """One terminal running a README line in bash, its output collected line by line."""

    def __init__(self, define: str, line: str, cwd: Path) -> None:
        self.lines: list[str] = []
        self._proc = subprocess.Popen(
            ["bash", "-c", f"{define}\n{line.split('#')[0]}"], cwd=cwd, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def lines_after(self, marker: str) -> list[str] | None:
        """What came after the last `marker` line (markers only before it), or None."""
        lines = list(self.lines)
        ends = [n for n, line in enumerate(lines) if line.endswith(f" {marker}")]
        return lines[ends[-1] + 1:] if ends else None

    def close(self) -> None:
        os.killpg(self._proc.pid, signal.SIGTERM)  # bash and its mosquitto_sub
        self._proc.wait(10)
        self._reader.join(10)
        assert self._proc.stdout is not None
        self._proc.stdout.close()
