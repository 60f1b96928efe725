"""`se3-collector publish` against the project's mosquitto: it never claims what it did not do.

mosquitto drops a publish its ACL denies; under MQTT 5 it says so in the PUBACK
(0x87), and the command, which speaks MQTT 5, exits 1 naming the topic and the
user. Removing a device that has no record says so instead of "deleted".
A broker that is down or refuses the credentials is named at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from demo.broker import Broker, free_port
from tests.conftest import collect
from tests.integration.test_collectors import BASE, SPARE_IP, retained, state_topic, write_config


def publish(broker: Broker, config: Path, *args: str, role: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collectors", "--config", str(config), "publish", *args,
         "--timeout", "30"],
        env={**os.environ, **broker.env(role), **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )


class TestRefusedPublish:
    def test_acl_denied_publish_exits_1_and_names_topic_and_user(
        self, broker: Broker, tmp_path: Path
    ) -> None:
        """As `monitor` (no write at all), `publish device` exits 1; nothing is stored."""
        config = write_config(tmp_path / "se3.toml", broker)
        done = publish(broker, config, "device", "--ip", SPARE_IP, "--status", "online",
                       "--type", "4", "--location", "loc-12",
                       role="monitor")
        assert done.returncode == 1, done.stderr
        topic = state_topic(SPARE_IP)
        assert (f"not authorised to write {topic} as monitor (the app or collector role can)"
                in done.stderr)
        assert "published as" not in done.stderr
        assert topic not in retained(broker, f"{BASE}/devices/+/state")

    def test_acl_denied_remove_exits_1(self, broker: Broker, tmp_path: Path) -> None:
        """`publish remove` as a role that may not write the topic exits 1, deletes nothing."""
        config = write_config(tmp_path / "se3.toml", broker)
        assert publish(broker, config, "device", "--ip", SPARE_IP, "--status", "online",
                       "--type", "4", "--location", "loc-12",
                       role="app").returncode == 0
        done = publish(broker, config, "remove", "--ip", SPARE_IP, role="monitor")
        assert done.returncode == 1, done.stderr
        assert "not authorised to write" in done.stderr
        assert "record deleted" not in done.stderr


class TestRemove:
    def test_remove_of_a_device_without_record_says_so(
        self, broker: Broker, tmp_path: Path
    ) -> None:
        """A device that never existed: exit 1, 'has no record', never 'record deleted'
        (as a user that may read device records and sees some)."""
        config = write_config(tmp_path / "se3.toml", broker)
        assert publish(broker, config, "device", "--ip", SPARE_IP, "--status", "online",
                       "--type", "4", "--location", "loc-12",
                       role="collector").returncode == 0
        done = publish(broker, config, "remove", "--ip", "127.0.0.99", role="collector")
        assert done.returncode == 1, done.stderr
        assert "device 127.0.0.99 has no record on the broker" in done.stderr
        assert "record deleted" not in done.stderr

    def test_an_app_removes_its_own_record_and_is_told_so(
        self, broker: Broker, tmp_path: Path
    ) -> None:
        """An app reads its own space: its remove says 'record deleted' (exit 0), and a
        second remove of the same device says it has no record (exit 1), as README says."""
        config = write_config(tmp_path / "se3.toml", broker)
        assert publish(broker, config, "device", "--ip", SPARE_IP, "--status", "online",
                       "--type", "4", "--location", "loc-12",
                       role="app").returncode == 0
        with collect(broker, f"{BASE}/apps/app/devices/{SPARE_IP}/state") as seen:
            done = publish(broker, config, "remove", "--ip", SPARE_IP, role="app")
            assert done.returncode == 0, done.stderr
            assert f"device {SPARE_IP} record deleted" in done.stderr
            seen.wait_for(lambda msgs: bool(msgs) and msgs[-1].payload == b"")
        again = publish(broker, config, "remove", "--ip", SPARE_IP, role="app")
        assert again.returncode == 1, again.stderr
        assert f"device {SPARE_IP} has no record on the broker" in again.stderr

    def test_remove_of_an_existing_device_deletes_it(
        self, broker: Broker, tmp_path: Path
    ) -> None:
        """An existing record is deleted (empty retained payload) and the command says so."""
        config = write_config(tmp_path / "se3.toml", broker)
        assert publish(broker, config, "device", "--ip", SPARE_IP, "--status", "online",
                       "--type", "4", "--location", "loc-12",
                       role="collector").returncode == 0
        with collect(broker, state_topic(SPARE_IP)) as seen:
            done = publish(broker, config, "remove", "--ip", SPARE_IP, role="collector")
            assert done.returncode == 0, done.stderr
            assert f"device {SPARE_IP} record deleted" in done.stderr
            seen.wait_for(lambda msgs: bool(msgs) and msgs[-1].payload == b"")


class TestAppSpace:
    def test_an_app_names_no_other_source(self, broker: Broker, tmp_path: Path) -> None:
        """As an app user, `--source` other than the user is refused before anything is sent
        (the bridge would refuse the record: an app's records are its own)."""
        config = write_config(tmp_path / "se3.toml", broker)
        done = publish(broker, config, "device", "--ip", SPARE_IP, "--status", "online",
                       "--type", "4", "--location", "loc-12", "--source", "devices",
                       role="app")
        assert done.returncode == 2, done.stderr
        assert "an app's records are its own: as broker user app" in done.stderr


class TestBrokerProblemsAtOnce:
    def test_nothing_listening_is_told_at_once(self, broker: Broker, tmp_path: Path) -> None:
        """No broker on the port: 'refused the connection', well within the 10 s timeout."""
        config = write_config(tmp_path / "se3.toml", broker)
        port = free_port()
        text = config.read_text(encoding="utf-8").replace(f"port = {broker.port}",
                                                          f"port = {port}")
        config.write_text(text, encoding="utf-8")
        start = time.monotonic()
        done = publish(broker, config, "device", "--ip", SPARE_IP, "--status", "online",
                       "--type", "4", "--location", "loc-12",
                       role="app")
        assert done.returncode == 1
        assert f"the MQTT broker at 127.0.0.1:{port} refused the connection" in done.stderr
        assert time.monotonic() - start < 10.0  # the timeout is 30 s

    def test_bad_password_is_named_at_once(self, broker: Broker, tmp_path: Path) -> None:
        """Wrong credentials: the broker's refusal is named, not a timeout."""
        config = write_config(tmp_path / "se3.toml", broker)
        wrong = tmp_path / "wrong.pass"
        wrong.write_text("not-the-password\n", encoding="utf-8")
        start = time.monotonic()
        done = publish(broker, config, "device", "--ip", SPARE_IP, "--status", "online",
                       "--type", "4", "--location", "loc-12",
                       role="app", env={"SE3_MQTT_PASSWORD_FILE": str(wrong)})
        assert done.returncode == 1
        assert "refused user 'app': not authorised (a wrong password" in done.stderr
        assert time.monotonic() - start < 10.0  # the timeout is 30 s
