"""Tests for bridge.status and the modules it reads with (observation, inforce, judge,
verdict, statustext): what `se3-bridge status` makes of the broker's messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.config import Config, parse_config
from bridge.inforce import expected_targets, url_source
from bridge.judge import summarize
from bridge.observation import Observation
from bridge.status import default_wait
from bridge.statustext import format_json, format_text
from bridge.verdict import Status

SN = "SZCCKQRAIJBAH0002"
BASE = f"se3/{SN}"
NOW = 1_700_000_000.0
URL = "http://127.0.0.1:9528/DeviceStatus"
INFO = {
    "gateway_ip": "192.168.1.251", "gateway_name": "box-1", "dev_sno": "ZKZC01",
    "sw_version": "build.date=2019\nVERSION: V2R1C01\n", "gateway_mac": "e0:a5:09:00:0e:6d",
}


def config(**platform: Any) -> Config:
    return parse_config({
        "gateway": {"sn": SN},
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "platform": {"report_url": URL, "interval": 20, **platform},
    })


def device(status: str = "online", **extra: Any) -> bytes:
    return json.dumps({"ep_status": status, "ep_type": "2", "ep_location": "loc", **extra}).encode()


def attempt(ok: bool = True, target: str = URL, **extra: Any) -> bytes:
    event = {
        "ts": NOW - 3, "target": target, "report_id": f"{SN}-b-7", "ok": ok,
        "status": 200 if ok else 503, "error": None if ok else "HTTP 503 Service Unavailable",
        "attempt": 1 if ok else 2, "devices": 2, "bytes": 800, "final": False,
        "retry_in": None if ok else 1.5, **extra,
    }
    return json.dumps(event).encode()


def observed(*messages: tuple[str, bytes] | tuple[str, bytes, bool]) -> Observation:
    """An Observation fed `(topic suffix, payload[, retained])`; retained by default."""
    obs = Observation("se3", SN)
    for message in messages:
        suffix, payload, *rest = message
        obs.add(f"{BASE}/{suffix}", payload, rest[0] if rest else True)
    return obs


def healthy_observation() -> Observation:
    return observed(
        ("bridge/status", b"online"),
        ("collectors/gateway/status", b"online"),
        ("collectors/devices/status", b"online"),
        ("gateway/info", json.dumps(INFO).encode()),
        ("gateway/metrics", json.dumps({"cpu_usage": 1.0, "ts": NOW - 4, "ttl": 30}).encode()),
        ("devices/10.0.0.1/state", device()),
        ("devices/10.0.0.2/state", device("offline")),
        ("bridge/report", attempt(), False),
    )


def status_of(obs: Observation, cfg: Config | None = None, waited: float = 2.0) -> Status:
    return summarize(obs, cfg or config(), NOW, waited)


class TestObservation:
    def test_retained_state_is_kept_per_subject(self) -> None:
        """Bridge, collectors, info, metrics, devices and report_url land in their slots."""
        obs = healthy_observation()
        assert obs.bridge == b"online"
        assert set(obs.collectors) == {"gateway", "devices"}
        assert set(obs.devices) == {"10.0.0.1", "10.0.0.2"}
        assert obs.info is not None
        assert obs.metrics is not None

    def test_empty_retained_payload_deletes(self) -> None:
        """An empty payload removes a device, a collector or the report_url override."""
        obs = observed(
            ("devices/10.0.0.1/state", device()), ("devices/10.0.0.1/state", b""),
            ("collectors/x/status", b"online"), ("collectors/x/status", b""),
            ("config/report_url", b"http://a/"), ("config/report_url", b""),
        )
        assert obs.devices == {}
        assert obs.collectors == {}
        assert obs.report_url is None

    def test_other_gateways_and_unknown_topics_are_ignored(self) -> None:
        """Messages of another serial, outside the prefix or of unknown shape change nothing."""
        obs = Observation("se3", SN)
        obs.add("se3/OTHER/bridge/status", b"online", True)
        obs.add("elsewhere/x", b"online", True)
        obs.add(f"{BASE}/bridge/fence", b"", True)
        assert obs == Observation("se3", SN)

    def test_last_event_per_target_wins(self) -> None:
        """A later attempt to the same target replaces the earlier one."""
        obs = observed(("bridge/report", attempt(False), False),
                       ("bridge/report", attempt(True), False))
        assert obs.targets[URL]["ok"] is True

    def test_retained_report_events_are_not_taken(self) -> None:
        """Events are never retained; a retained one (someone's mistake) is not news."""
        obs = observed(("bridge/report", attempt(), True))
        assert obs.targets == {}

    def test_login_and_error_events(self) -> None:
        """Login events go to `login`; error events are counted, the last five kept."""
        login = json.dumps({"login": "http://p/login", "ok": False, "error": "HTTP 500"})
        obs = observed(("bridge/report", login.encode(), False), *[
            ("bridge/errors", json.dumps({"topic": f"t{n}", "reason": "bad"}).encode(), False)
            for n in range(7)
        ])
        assert obs.login is not None
        assert obs.login["ok"] is False
        assert obs.errors_seen == 7
        assert [e["topic"] for e in obs.errors] == ["t2", "t3", "t4", "t5", "t6"]

    def test_malformed_events_are_ignored(self) -> None:
        """A non-JSON or non-object event is skipped, not an error."""
        obs = observed(("bridge/report", b"nope", False), ("bridge/report", b"[1]", False))
        assert obs.targets == {}
        assert obs.login is None


class TestDecision:
    def test_online_and_delivered_is_healthy(self) -> None:
        """Bridge online and the last attempt to the only target ok: healthy, no problems."""
        status = status_of(healthy_observation())
        assert status.healthy
        assert status.problems == []

    @pytest.mark.parametrize(("payload", "word"), [(b"offline", "offline"), (None, "never")])
    def test_bridge_not_online_is_a_problem(self, payload: bytes | None, word: str) -> None:
        """An offline or missing bridge/status makes the status unhealthy, saying which."""
        obs = healthy_observation()
        obs.bridge = payload
        status = status_of(obs)
        assert not status.healthy
        assert word in status.problems[0]

    def test_failed_last_attempt_is_a_problem(self) -> None:
        """The last attempt to a target failed: unhealthy, with the HTTP status and retry."""
        obs = healthy_observation()
        obs.add(f"{BASE}/bridge/report", attempt(False), False)
        (problem,) = status_of(obs).problems
        assert URL in problem
        assert "HTTP 503" in problem
        assert "retrying in 1.5 s" in problem

    def test_every_expected_target_must_succeed(self) -> None:
        """With two report URLs, one silent target is a problem even when the other is ok."""
        other = "http://127.0.0.2:9528/DeviceStatus"
        status = status_of(healthy_observation(), config(report_url=[URL, other]), waited=35)
        (problem,) = status.problems
        assert problem.startswith(f"{other}: no delivery attempt seen in 35 s, longer than the "
                                  "report period of 20 s")

    def test_target_names_are_redacted_like_the_bridge_does(self) -> None:
        """A URL with credentials and a query is expected under its redacted name."""
        cfg = config(report_url="http://u:secret@127.0.0.1:9528/DeviceStatus?token=x")
        assert expected_targets(healthy_observation(), cfg) == [URL]
        assert status_of(healthy_observation(), cfg).healthy

    def test_no_url_is_a_problem(self) -> None:
        """Without any report URL the bridge sends nothing: say so."""
        status = status_of(healthy_observation(), config(report_url=[]))
        assert "no report URL" in status.problems[0]

    def test_no_gateway_info_is_explained(self) -> None:
        """Without gateway/info no report goes out; the problem and a note say why."""
        obs = healthy_observation()
        obs.info = None
        obs.targets.clear()
        status = status_of(obs)
        assert "no gateway/info yet" in status.problems[0]
        assert any("no gateway/info" in note for note in status.notes)

    def test_login_targets_judged_by_what_was_seen(self) -> None:
        """With a login, the seen targets are judged; none seen is a problem."""
        cfg = config(report_url=[], login_url="http://127.0.0.1:9528/api/gateway/login")
        assert status_of(healthy_observation(), cfg).healthy
        obs = healthy_observation()
        obs.targets.clear()
        assert "no delivery attempt seen" in status_of(obs, cfg, waited=35).problems[0]

    def test_collector_offline_is_a_note_not_a_problem(self) -> None:
        """An offline collector is worth saying but the bridge itself is fine."""
        obs = healthy_observation()
        obs.add(f"{BASE}/collectors/devices/status", b"offline", True)
        status = status_of(obs)
        assert status.healthy
        assert "collector devices is offline" in status.notes[0]


class TestUrlSource:
    def test_config_topic_beats_login_and_file(self) -> None:
        """The retained config/report_url wins, as in the bridge (docs/protocol.md)."""
        obs = observed(("config/report_url", b"http://127.0.0.3/a, http://127.0.0.4/b"))
        cfg = config(login_url="http://127.0.0.1:9528/api/gateway/login")
        assert url_source(obs, cfg) == ("config topic", ["http://127.0.0.3/a",
                                                         "http://127.0.0.4/b"])

    def test_login_beats_file(self) -> None:
        """With a login URL the targets come from the login answer: unknown here."""
        cfg = config(login_url="http://127.0.0.1:9528/api/gateway/login?x=1")
        assert url_source(Observation("se3", SN), cfg) == ("login", [])
        assert expected_targets(Observation("se3", SN), cfg) is None

    def test_login_shows_the_targets_seen(self) -> None:
        """With a login, the URLs shown are the targets whose attempts were seen."""
        cfg = config(report_url=[], login_url="http://127.0.0.1:9528/api/gateway/login?x=1")
        status = status_of(healthy_observation(), cfg)
        assert status.urls == [URL]
        assert status.login_url == "http://127.0.0.1:9528/api/gateway/login"
        assert (f"  report URL  {URL} (from the login at http://127.0.0.1:9528/api/gateway/login"
                ", by the config: the bridge has not said)" in format_text(status).splitlines())

    def test_file_last(self) -> None:
        """With neither topic nor login, the config file's URLs."""
        assert url_source(Observation("se3", SN), config()) == ("config file", [URL])


class TestDevices:
    def test_counts_by_effective_status(self) -> None:
        """Stale, orphaned and said-offline records count offline; invalid ones apart."""
        obs = observed(
            ("collectors/probe/status", b"offline"),
            ("devices/10.0.0.1/state", device()),
            ("devices/10.0.0.2/state", device("offline")),
            ("devices/10.0.0.3/state", device(ts=NOW - 100, ttl=30)),
            ("devices/10.0.0.4/state", device(ts=NOW - 10, ttl=30)),
            ("devices/10.0.0.5/state", device(source="probe")),
            ("devices/10.0.0.6/state", device("up")),
        )
        d = status_of(obs).devices
        assert (d.total, d.online, d.offline, d.stale, d.orphaned, d.invalid) == (5, 2, 3, 1, 1, 1)

    def test_stale_metrics_are_noted(self) -> None:
        """Metrics past their ttl are flagged: the bridge leaves them out."""
        obs = healthy_observation()
        obs.add(f"{BASE}/gateway/metrics", json.dumps({"ts": NOW - 90, "ttl": 30}).encode(), True)
        status = status_of(obs)
        assert status.metrics_stale
        assert status.metrics_age == pytest.approx(90)


class TestFormatting:
    def test_text_has_one_line_per_subject(self) -> None:
        """The text names bridge, collectors, gateway, devices, URL and each delivery."""
        text = format_text(status_of(healthy_observation()))
        lines = text.splitlines()
        assert lines[0] == f"gateway {SN} on broker 127.0.0.1:1883"
        assert "  bridge      online" in lines
        assert "  collectors  devices online, gateway online" in lines
        assert any(line.startswith("  gateway     box-1, ip 192.168.1.251") for line in lines)
        assert "  devices     2: 1 online, 1 offline" in lines
        assert (f"  report URL  {URL} (from the config file, by the config: the bridge has "
                "not said)") in lines
        assert any(line.startswith(f"    {URL}: ok, HTTP 200") and "3 s ago" in line
                   for line in lines)
        assert lines[-1].startswith("OK:")

    def test_text_lists_problems_last(self) -> None:
        """An unhealthy status ends with its PROBLEM lines and no OK."""
        obs = healthy_observation()
        obs.add(f"{BASE}/bridge/report", attempt(False), False)
        lines = format_text(status_of(obs)).splitlines()
        assert lines[-1].startswith(f"PROBLEM: {URL}: last attempt failed")
        assert not any(line.startswith("OK") for line in lines)
        assert any("FAILED, HTTP 503 (HTTP 503 Service Unavailable)" in line for line in lines)

    def test_offline_bridge_shows_no_deliveries(self) -> None:
        """When the bridge is offline, there is no deliveries section to wait for."""
        obs = healthy_observation()
        obs.bridge = b"offline"
        assert "deliveries" not in format_text(status_of(obs))

    def test_json_carries_the_same(self) -> None:
        """--json: the decision, counts and last attempts as plain JSON."""
        doc = json.loads(format_json(status_of(healthy_observation())))
        assert doc["healthy"] is True
        assert doc["bridge"] == "online"
        assert doc["collectors"] == {"devices": "online", "gateway": "online"}
        assert doc["gateway"]["gateway_mac"] == "e0:a5:09:00:0e:6d"
        assert doc["gateway"]["sw_version"] == "build.date=2019"
        assert doc["devices"]["online"] == 1
        assert doc["devices"]["offline"] == 1
        assert doc["report_url"] == {"source": "config file", "urls": [URL], "login_url": None}
        assert doc["targets"][URL]["report_id"] == f"{SN}-b-7"
        assert doc["metrics"] == {"age": 4.0, "stale": False}

    def test_default_wait_is_interval_plus_five(self) -> None:
        """By default status waits one platform interval and 5 s for the next report."""
        assert default_wait(config(interval=7)) == 12


def settings(**parts: Any) -> bytes:
    """A bridge/settings payload as the bridge publishes it; `parts` replace its entries."""
    doc: dict[str, Any] = {
        "ts": NOW - 50,
        "report_url": {"value": [URL], "source": "file"},
        "report_period": {"value": 20, "source": "file"},
        "login_url": {"value": "", "source": "none"},
        "dev_sno": {"value": "ZKZC01", "source": "gateway"},
        "login": {"state": "off", "at": None, "error": None},
        "refused": [],
        **parts,
    }
    return json.dumps(doc).encode()


class TestInForce:
    def test_refused_config_url_is_shown_refused_and_the_real_target_judged(self) -> None:
        """config/report_url = ftp://... was refused: status shows the target the bridge
        really uses (failing), the ftp URL as REFUSED, and both as problems."""
        real = "http://127.0.0.5:9528/DeviceStatus"
        obs = healthy_observation()
        obs.add(f"{BASE}/config/report_url", b"ftp://files.example/x", True)
        obs.add(f"{BASE}/bridge/settings", settings(
            report_url={"value": [real], "source": "login"},
            refused=[{"setting": "report_url", "value": "ftp://files.example/x",
                      "reason": "not an http(s) URL", "at": NOW - 10}],
        ), True)
        obs.add(f"{BASE}/bridge/report", attempt(False, target=real), False)
        status = status_of(obs)
        assert status.urls == [real]
        assert status.url_source == "login"
        text = format_text(status)
        assert f"  report URL  {real} (from the login" in text
        assert "ftp://files.example/x" not in text.split("REFUSED")[0]
        assert ("  REFUSED     config/report_url = 'ftp://files.example/x': not an http(s) URL, "
                "10 s ago") in text.splitlines()
        assert any(p.startswith("config/report_url holds 'ftp://files.example/x', which the "
                                f"bridge refused (not an http(s) URL); it keeps using {real}")
                   for p in status.problems)
        assert any(p.startswith(f"{real}: last attempt failed") for p in status.problems)
        assert status.exit_code == 1

    def test_a_refused_value_no_longer_on_its_topic_is_a_note(self) -> None:
        """A refusal the operator has since corrected is history, not a problem."""
        obs = healthy_observation()
        obs.add(f"{BASE}/bridge/settings", settings(refused=[
            {"setting": "report_period", "value": "0", "reason": "out of range", "at": NOW}]),
            True)
        status = status_of(obs)
        assert status.healthy
        assert any("refused config/report_period '0' earlier" in n for n in status.notes)

    def test_period_in_force_judges_no_attempt(self) -> None:
        """`--wait 3` with a 20 s period: not seen yet (exit 3), never a false PROBLEM."""
        obs = healthy_observation()
        obs.targets.clear()
        obs.add(f"{BASE}/bridge/settings", settings(
            report_period={"value": 20, "source": "login"}), True)
        status = status_of(obs, waited=3)
        assert status.problems == []
        assert status.exit_code == 3
        (pending,) = status.pending
        assert pending == (f"{URL}: no delivery attempt in the 3 s watched; reports go every "
                           "20 s (watch longer: --wait 25)")
        text = format_text(status)
        assert "PROBLEM" not in text
        assert text.splitlines()[-1] == f"NOT SEEN YET: {pending}"
        assert "  period      20 s (from the login)" in text.splitlines()

    def test_period_from_the_settings_sets_the_default_wait(self) -> None:
        """The period in force (a login's 60 s) sets how long status watches by default."""
        assert default_wait(config(interval=20), 60.0) == 65

    def test_login_targets_from_the_settings_are_expected(self) -> None:
        """With a login, the settings name the targets; an event with the token query the
        bridge adds still counts for its URL."""
        cfg = config(report_url=[], login_url="http://127.0.0.1:9528/api/gateway/login")
        obs = healthy_observation()
        obs.targets.clear()
        obs.add(f"{BASE}/bridge/report", attempt(target=f"{URL}?token=REDACTED"), False)
        obs.add(f"{BASE}/bridge/settings", settings(
            report_url={"value": [URL], "source": "login"},
            login_url={"value": "http://127.0.0.1:9528/api/gateway/login", "source": "file"},
            login={"state": "ok", "at": NOW - 30, "error": None}), True)
        assert expected_targets(obs, cfg) == [URL]
        status = status_of(obs, cfg)
        assert status.healthy, status.problems
        assert "  login       ok, 30 s ago" in format_text(status).splitlines()

    def test_no_settings_says_so(self) -> None:
        """An older bridge (no bridge/settings): said, and the config's guess is labelled."""
        status = status_of(healthy_observation())
        assert any(n.startswith("the bridge has not published its settings (bridge/settings): "
                                "an older bridge, or one not running") for n in status.notes)
        assert not status.settings_known

    def test_unreadable_settings_are_noted(self) -> None:
        """Garbage on bridge/settings: a note, and the config's guess is used."""
        obs = healthy_observation()
        obs.add(f"{BASE}/bridge/settings", b"[1, 2]", True)
        status = status_of(obs)
        assert any("bridge/settings is not a JSON object" in n for n in status.notes)
        assert status.urls == [URL]


class TestMissing:
    def test_release_and_what_its_report_misses(self) -> None:
        """status names the release in force and the required fields nothing measures."""
        status = status_of(healthy_observation())

        assert status.release == "V2R2C01: F2"
        assert status.missing == [
            "gateway_ext_data.sdk_version", "gateway_ext_data.memory_size",
            "gateway_ext_data.memory_usage", "gateway_ext_data.disk_size",
            "gateway_ext_data.disk_free_size", "gateway_ext_data.temperature"]
        assert "  missing     6: gateway_ext_data.sdk_version, " in format_text(status)
        assert json.loads(format_json(status))["missing"] == status.missing

    def test_the_hardware_record_fills_what_only_a_sophon_box_knows(self) -> None:
        """Under V2R6C01 the hardware record's TPU memory regions are no longer missing."""
        cfg = config(release="V2R6C01")
        without = status_of(healthy_observation(), cfg).missing
        obs = healthy_observation()
        obs.add(f"{BASE}/gateway/hardware", json.dumps({
            "tpu_memory": {"total_bytes": 4 << 30, "used_bytes": 1 << 29}}).encode(), True)
        with_hardware = status_of(obs, cfg).missing

        assert "gateway_ext_data.memory_info.tpu.total" in without
        assert "gateway_ext_data.memory_info.tpu.total" not in with_hardware
        assert status_of(obs, cfg).release == "V2R6C01: F4"

    def test_no_gateway_info(self) -> None:
        """Without gateway/info no report is sent: that is what is missing."""
        assert status_of(observed(("bridge/status", b"online"))).missing == ["gateway/info"]


class TestTwoReports:
    """A two-report release (bridge/settings says so): the sub-device report's URLs, period
    and deliveries are shown and judged beside the gateway report's."""

    MEDIA = "http://127.0.0.1:9528/box/media/monitor/status/report"

    def settings(self, media: list[str]) -> bytes:
        return json.dumps({
            "report_url": {"value": [URL], "source": "file"},
            "report_period": {"value": 20.0, "source": "file"},
            "devices_report_url": {"value": media, "source": "topic"},
            "devices_report_period": {"value": 30.0, "source": "topic"},
            "release": {"value": "V6R1C01", "source": "topic", "reports": ["F7", "F8"],
                        "login": "L4"},
            "login": {"state": "off", "at": None, "error": None}, "refused": [],
        }).encode()

    def test_both_reports_shown_and_delivered(self) -> None:
        obs = healthy_observation()
        obs.add(f"{BASE}/bridge/settings", self.settings([self.MEDIA]), True)
        obs.add(f"{BASE}/bridge/report",
                attempt(target=self.MEDIA, report="devices"), False)

        status = status_of(obs)

        assert status.healthy, status.problems
        assert status.release == "V6R1C01: F7 + F8"  # the topic's, not the file's seed
        assert list(status.targets) == [URL]
        text = format_text(status)
        assert f"sub-device report URL  {self.MEDIA} (from the config topic)" in text
        assert "sub-device period      30 s (from the config topic)" in text
        assert text.count("ok, HTTP 200") == 2
        shown = json.loads(format_json(status))["devices_report"]
        assert list(shown["targets"]) == [self.MEDIA]
        assert shown["report_period"] == {"value": 30.0, "source": "config topic"}

    def test_a_sub_device_report_without_a_url_is_a_problem(self) -> None:
        obs = healthy_observation()
        obs.add(f"{BASE}/bridge/settings", self.settings([]), True)

        status = status_of(obs)

        assert status.exit_code == 1
        assert any(p.startswith("sub-device report: no URL") for p in status.problems)

    def test_a_failing_sub_device_target_is_named_as_such(self) -> None:
        obs = healthy_observation()
        obs.add(f"{BASE}/bridge/settings", self.settings([self.MEDIA]), True)
        obs.add(f"{BASE}/bridge/report",
                attempt(ok=False, target=self.MEDIA, report="devices"), False)

        status = status_of(obs)

        assert [p.split(":")[0] for p in status.problems] == ["sub-device report"]
        assert self.MEDIA.split("//")[1] in status.problems[0]
