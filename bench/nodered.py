"""The Node-RED peer: the flow a user would build instead of the bridge, on the same job.

`make bench` installs Node-RED with npm into `var/nodered` (once; skipped, with
a note in the results, when npm or node is missing or the install fails) and
runs a flow of core nodes only:

    mqtt in (the gateway's filter, QoS 0, as the read-only `debug` role)
      -> function (keeps every record in the node's context; once the gateway's
         info and the expected number of devices are in, builds the report
         body: devices sorted by IP, ep_id, the gateway's ext data)
      -> http request (POST to the platform, with an X-Report-Id)

It knows how many devices to wait for (a retained replay has no end marker in
Node-RED), checks only the keys a report needs, and ignores freshness (`ts`,
`ttl`): less work than the bridge does, so its times are a lower bound. The
editor and the admin API are off (`httpAdminRoot: false`), as on a production
box. Its messages go to the log file next to its flow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.stack import (
    BASE,
    FILTER,
    ROOT,
    SN,
    Platform,
    cpu_seconds,
    stop_process,
    sub_devices,
)
from demo.broker import Broker

VERSION = "4"  # the major release installed
INSTALL_DIR = ROOT / "var" / "nodered"
RED_JS = INSTALL_DIR / "node_modules" / "node-red" / "red.js"
# The broker refuses a client id that does not start with `se3-` (clientid_prefixes),
# and Node-RED's broker node given none asks for `nodered_<random>`: name one.
CLIENT_ID = "se3-bench-nodered"

_FUNCTION = r"""
const st = context.get("st");
const rest = msg.topic.substring(BASE.length);
const text = msg.payload;
if (rest === "gateway/info") {
    st.info = JSON.parse(text);
} else if (rest === "gateway/metrics") {
    st.metrics = text ? JSON.parse(text) : null;
} else if (rest.startsWith("devices/") && rest.endsWith("/state")) {
    const ip = rest.slice(8, -6);
    if (!text) {
        if (ip in st.devices) { delete st.devices[ip]; st.count--; }
    } else {
        let r;
        try { r = JSON.parse(text); } catch (e) { return null; }
        if (typeof r.ep_status !== "string" || typeof r.ep_type !== "string"
            || typeof r.ep_location !== "string") return null;
        if (!(ip in st.devices)) st.count++;
        st.devices[ip] = r;
    }
} else {
    return null;
}
if (!st.info || st.count < EXPECTED) return null;
if (st.timer) return null;
const due = Math.max(0, st.last + 1000 - Date.now());
st.timer = setTimeout(() => {
    st.timer = null;
    st.last = Date.now();
    node.send(report(st));
}, due);
return null;

function key(ip) {
    return ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
}

function report(st) {
    const info = st.info;
    const ips = Object.keys(st.devices).sort((a, b) => key(a) - key(b));
    const subs = ips.map(ip => {
        const r = st.devices[ip];
        const d = {ep_id: info.dev_sno + "__" + ip, ep_name: r.ep_name || "", ep_ip: ip,
                   ep_status: r.ep_status, ep_location: r.ep_location, ep_type: r.ep_type};
        if (r.ep_url) d.ep_url = r.ep_url;
        return d;
    });
    const ext = {sw_version: info.sw_version};
    if (info.sdk_version) ext.sdk_version = info.sdk_version;
    if (info.gateway_mac) ext.gateway_mac = info.gateway_mac;
    const m = st.metrics || {};
    for (const [k, n] of [["cpu_usage", 1], ["memory_size", 2], ["memory_usage", 2],
                          ["disk_size", 2], ["disk_free_size", 2]]) {
        if (typeof m[k] === "number") ext[k] = Math.round(m[k] * 10 ** n) / 10 ** n;
    }
    if (Number.isInteger(m.temperature)) ext.temperature = m.temperature;
    const body = {gateway_ip: info.gateway_ip.trim(), gateway_name: info.gateway_name,
                  gateway_status: "online", gateway_sn: SN, dev_sno: info.dev_sno,
                  gateway_ext_data: ext, sub_devices: subs};
    st.sent++;
    return {payload: JSON.stringify(body),
            headers: {"content-type": "application/json; charset=utf-8",
                      "X-Report-Id": SN + "-nodered-" + st.sent}};
}
"""

_INIT = 'context.set("st", {devices: {}, count: 0, info: null, metrics: null, ' \
        'timer: null, last: 0, sent: 0});'


def install(log: Path) -> str | None:
    """Install Node-RED into var/nodered once; None when ready, else why not."""
    if RED_JS.exists():
        return None
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        return "npm or node not found: the Node-RED peer was skipped (apt install npm)"
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--omit=dev", "--prefix",
             str(INSTALL_DIR), f"node-red@{VERSION}"],
            stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False,
        )
    if done.returncode != 0 or not RED_JS.exists():
        return f"npm install node-red@{VERSION} failed (see {log}): the Node-RED peer was skipped"
    return None


def version() -> str:
    try:
        package = json.loads((RED_JS.parent / "package.json").read_text(encoding="utf-8"))
        return str(package.get("version", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def write_flow(directory: Path, broker: Broker, platform: Platform, expected: int) -> Path:
    """The user directory of one Node-RED: settings, flow and (plain) credentials."""
    directory.mkdir(parents=True, exist_ok=True)
    code = f"const BASE = {json.dumps(BASE + '/')};\nconst SN = {json.dumps(SN)};\n" \
           f"const EXPECTED = {expected};\n{_FUNCTION}"
    flow = [
        {"id": "tab", "type": "tab", "label": "se3 bench"},
        {"id": "brk", "type": "mqtt-broker", "name": "", "broker": broker.host,
         "port": str(broker.port), "clientid": CLIENT_ID, "autoConnect": True, "usetls": False,
         "protocolVersion": "4", "keepalive": "60", "cleansession": True},
        {"id": "in", "type": "mqtt in", "z": "tab", "name": "", "topic": FILTER, "qos": "0",
         "datatype": "utf8", "broker": "brk", "nl": False, "rap": True, "rh": 0,
         "inputs": 0, "wires": [["fn"]]},
        {"id": "fn", "type": "function", "z": "tab", "name": "state", "func": code,
         "outputs": 1, "initialize": _INIT, "finalize": "", "libs": [], "wires": [["post"]]},
        {"id": "post", "type": "http request", "z": "tab", "name": "", "method": "POST",
         "ret": "txt", "paytoqs": "ignore", "url": platform.url, "tls": "", "persist": True,
         "proxy": "", "insecureHTTPParser": False, "authType": "", "senderr": False,
         "headers": [], "wires": [[]]},
    ]
    (directory / "flows.json").write_text(json.dumps(flow), encoding="utf-8")
    credentials = {"brk": {"user": "debug", "password": broker.password("debug")}}
    (directory / "flows_cred.json").write_text(json.dumps(credentials), encoding="utf-8")
    settings = directory / "settings.js"
    settings.write_text(
        "module.exports = {flowFile: 'flows.json', credentialSecret: false, uiHost: '127.0.0.1',"
        " uiPort: 0, httpAdminRoot: false, httpNodeRoot: false, disableEditor: true,"
        " logging: {console: {level: 'warn'}}, contextStorage: {default: {module: 'memory'}}};\n",
        encoding="utf-8",
    )
    return directory


@dataclass
class NodeRedRun:
    seconds: float
    cpu_seconds: float
    rss_mb: float


def run_once(directory: Path, platform: Platform, expected: int, log: Path) -> NodeRedRun:
    """Start Node-RED on the flow; time to the first report with every device; its CPU, RSS."""
    node = shutil.which("node") or "node"
    after = time.time()
    with open(log, "ab") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            [node, str(RED_JS), "--userDir", str(directory), "--settings",
             str(directory / "settings.js")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        process = psutil.Process(proc.pid)
        report = platform.wait(lambda r: len(sub_devices(r)) == expected, 120.0, after)
        cpu = cpu_seconds(process)
        rss = process.memory_info().rss / 2**20
        arrived = platform.arrivals.time_of(report.report_id)
    finally:
        stop_process(proc)
    return NodeRedRun(arrived - started, cpu, rss)
