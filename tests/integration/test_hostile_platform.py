"""A platform that is not to be trusted: too many addresses, tokens in refused URLs, huge,
trickling or forged answers. The bridge runs as a process against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from demo.broker import Broker
from receiver.app import create_app
from receiver.login import LoginSettings
from receiver.server import ReceiverServer
from tests.conftest import collect
from tests.integration.stack import BASE, publish_spec_example, running_bridge, write_config


class TestLoginAnswer:
    def test_a_login_naming_1500_addresses_gets_8_targets(
        self, tmp_path: Path, broker: Broker
    ) -> None:
        """A login answer with 1,500 addresses (and duplicates): at most 8 targets, each once,
        the rest refused with a warning; the bridge's threads stay few."""
        many = ",".join(["/DeviceStatus", "/DeviceStatus"] + [f"/r{n}" for n in range(1500)])
        server = ReceiverServer(create_app(login=LoginSettings(address=many, period=1))).start()
        config = write_config(tmp_path / "b.toml", broker,
                              login_url=f"{server.url}/api/gateway/login")
        publish_spec_example(broker)
        log = tmp_path / "bridge.log"
        try:
            with collect(broker, f"{BASE}/bridge/report") as seen, \
                    running_bridge(config, broker, log) as bridge:
                assert server.state.store.wait_for(lambda r: True, timeout=10) is not None
                seen.wait_for(lambda ms: len({json.loads(m.payload).get("target")
                                              for m in ms} - {None}) >= 8)
                assert bridge.proc is not None
                threads = psutil.Process(bridge.proc.pid).num_threads()
        finally:
            server.stop()
        targets = {json.loads(m.payload).get("target") for m in seen.messages} - {None}
        assert len(targets) == 8
        assert threads < 30
        text = log.read_text(encoding="utf-8")
        assert "more than 8 report URLs" in text


class TestRefusedUrls:
    def test_check_never_shows_a_token_of_a_refused_url(self, tmp_path: Path) -> None:
        """`se3-bridge check` on a bad report_url names it without credentials or query."""
        config = tmp_path / "b.toml"
        config.write_text(
            '[gateway]\nsn = "SN1"\n[platform]\n'
            'report_url = "ftp://user:pw@platform.example/r?token=s3cret"\n', encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "--config", str(config), "check"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 2
        assert "ftp://platform.example/r" in done.stderr
        assert "s3cret" not in done.stderr + done.stdout
        assert "pw" not in done.stderr + done.stdout
