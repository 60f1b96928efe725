"""`se3-bridge status` shown: the state known at once, how the console is reached, then
the deliveries watched, notes and the verdict, as text for a person or JSON for a script.
"""

from __future__ import annotations

import orjson

from bridge.addresses import is_loopback
from bridge.config import ConsoleSection
from bridge.observation import Event
from bridge.verdict import Status


def _ago(ts: object, now: float) -> str:
    if not isinstance(ts, int | float):
        return ""
    return f", {max(0.0, now - ts):.0f} s ago"


def _attempt_line(name: str, event: Event, now: float) -> str:
    result = "ok" if event.get("ok") is True else "FAILED"
    status = f"HTTP {event['status']}" if event.get("status") else "no answer"
    error = f" ({event['error']})" if event.get("error") else ""
    final = ", last report before shutdown" if event.get("final") else ""
    return (f"    {name}: {result}, {status}{error}, report {event.get('report_id')}, "
            f"attempt {event.get('attempt')}, {event.get('devices')} devices, "
            f"{event.get('bytes')} bytes{_ago(event.get('ts'), now)}{final}")


def _login_line(s: Status) -> str | None:
    if s.login_state is not None:
        state = str(s.login_state.get("state"))
        at = s.login_state.get("at")
        if state == "failed":
            return f"  login       FAILED ({s.login_state.get('error')}){_ago(at, s.now)}"
        if state == "ok":
            return f"  login       ok{_ago(at, s.now)}"
        return f"  login       {'not used' if state == 'off' else state}"
    if s.login is not None:
        ok = "ok" if s.login.get("ok") is True else f"FAILED ({s.login.get('error')})"
        return f"  login       {ok}{_ago(s.login.get('ts'), s.now)}"
    return None


def format_state(status: Status) -> str:
    """What the retained state says, known as soon as the replay is in; no trailing newline."""
    s = status
    lines = [f"gateway {s.gateway_sn} on broker {s.broker}", f"  bridge      {s.bridge}"]
    collectors = ", ".join(f"{n} {state}" for n, state in s.collectors.items()) or "none seen"
    lines.append(f"  collectors  {collectors}")
    if s.gateway is None:
        lines.append("  gateway     no valid gateway/info")
    else:
        g = s.gateway
        extra = "".join(f", {key} {g[key]}" for key in ("gateway_mac", "sdk_version") if key in g)
        lines.append(f"  gateway     {g['gateway_name']}, ip {g['gateway_ip']}, "
                     f"dev_sno {g['dev_sno']}{extra}")
    if s.metrics_age is None:
        lines.append("  metrics     none with a ts")
    else:
        stale = " (stale: left out of reports)" if s.metrics_stale else ""
        lines.append(f"  metrics     {s.metrics_age:.0f} s old{stale}")
    d = s.devices
    detail = [f"{d.online} online", f"{d.offline} offline"]
    if d.stale:
        detail.append(f"{d.stale} of them past their ttl")
    if d.orphaned:
        detail.append(f"{d.orphaned} of them by an offline collector")
    if d.invalid:
        detail.append(f"{d.invalid} invalid")
    lines.append(f"  devices     {d.total}: {', '.join(detail)}")
    if s.release:
        lines.append(f"  release     {s.release}")
        if s.missing:
            lines.append(f"  missing     {len(s.missing)}: {', '.join(s.missing)} "
                         "(no source: sent as \"\", as the document's absent value, or left out)")
    said = "" if s.settings_known else ", by the config: the bridge has not said"
    urls = ", ".join(s.urls)
    if s.login_url is not None:
        lines.append(f"  report URL  {urls or 'none seen yet'} (from the login at "
                     f"{s.login_url}{said})")
    else:
        lines.append(f"  report URL  {urls} (from the {s.url_source}{said})" if urls else
                     f"  report URL  none{said and f' ({said[2:]})'}")
    lines.append(f"  period      {s.period:g} s (from the {s.period_source}{said})")
    second = s.devices_report
    if second is not None:  # a two-report release: the sub-device report's own
        urls = ", ".join(second.urls) or "none"
        lines.append(f"  sub-device report URL  {urls} (from the {second.url_source})")
        lines.append(f"  sub-device period      {second.period:g} s "
                     f"(from the {second.period_source})")
    login = _login_line(s)
    if login is not None:
        lines.append(login)
    for entry in s.refused:
        lines.append(f"  REFUSED     config/{entry.get('setting')} = {entry.get('value')!r}: "
                     f"{entry.get('reason')}{_ago(entry.get('at'), s.now)}")
    return "\n".join(lines)


def console_listeners(section: ConsoleSection) -> list[dict[str, str | None]]:
    """How each console listener is reached: its URL, the SHA-256 fingerprint of its
    certificate (None over plain HTTP, or when it cannot be read) and a note."""
    from bridge.certificate import CertificateError, fingerprint

    found: list[dict[str, str | None]] = []
    for listen in section.listeners():
        host = listen.rpartition(":")[0].strip("[]")
        if not section.https(host):
            why = "loopback" if is_loopback(host) else "insecure_http: readable on the network"
            found.append({"url": f"http://{listen}", "certificate_sha256": None, "note": why})
            continue
        cert, _ = section.certificate_files()
        try:
            found.append({"url": f"https://{listen}", "certificate_sha256": fingerprint(cert),
                          "note": None})
        except CertificateError as exc:
            note = ("no certificate yet (the console makes it at its first start)"
                    if not cert.exists() else str(exc))
            found.append({"url": f"https://{listen}", "certificate_sha256": None, "note": note})
    return found


def format_console(section: ConsoleSection) -> str:
    """How the console is reached, each listener a line: plain HTTP and why, or HTTPS
    and the SHA-256 fingerprint of its certificate (what a browser's warning shows)."""
    lines = []
    for item in console_listeners(section):
        if item["certificate_sha256"] is not None:
            known = f", certificate SHA-256 {item['certificate_sha256']}"
        elif item["url"] and item["url"].startswith("https://"):
            known = f", {item['note']}"
        else:
            known = f" ({item['note']})"
        lines.append(f"  console     {item['url']}{known}")
    return "\n".join(lines)


def format_outcome(status: Status) -> str:
    """The deliveries seen while watching, then notes and the verdict; no trailing newline."""
    s = status
    lines: list[str] = []
    if s.bridge == "online":
        lines.append(f"  deliveries  (watched {s.waited:.0f} s)")
        for name, event in s.targets.items():
            lines.append(_attempt_line(name, event, s.now))
        if not s.targets:
            lines.append("    none seen")
        if s.devices_report is not None:
            lines.append("  sub-device report deliveries")
            for name, event in s.devices_report.targets.items():
                lines.append(_attempt_line(name, event, s.now))
            if not s.devices_report.targets:
                lines.append("    none seen")
    if s.errors_seen:
        lines.append(f"  rejected    {s.errors_seen} message(s) while watching, last:")
        lines.extend(f"    {e.get('topic')}: {e.get('reason')}" for e in s.errors)
    lines.append("")
    lines.extend(f"note: {note}" for note in s.notes)
    lines.extend(f"NOT SEEN YET: {item}" for item in s.pending)
    lines.extend(f"PROBLEM: {problem}" for problem in s.problems)
    if s.healthy:
        lines.append("OK: the bridge is online and its last report to each target was delivered")
    return "\n".join(lines)


def format_text(status: Status) -> str:
    """The whole summary for a person, several lines, no trailing newline."""
    return f"{format_state(status)}\n{format_outcome(status)}"


def format_json(status: Status,
                console: list[dict[str, str | None]] | None = None) -> str:
    """The summary as JSON; with `console` (console_listeners) under the key "console"."""
    doc = status.as_json()
    if console is not None:
        doc = {**doc, "console": console}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()

