// The receiver's live page: polls /api/reports?since=... every second and
// draws one card per box (by gateway_sn; a report of devices alone by the code
// it names the box by) from its latest report. What to show of a report comes
// with it (`view`, made from its format's table by receiver/view.py): its
// facts and nested fields in table order, where its devices are and which of
// their keys to show, so the page draws every release's report alike.
// Filters by gateway and device (kept in the address: ?gateway=&device=); a
// click on a report shows its body, a click on a device its status changes
// (/api/timeline).
// Every value comes from an untrusted body, so text goes in with textContent
// and attributes with setAttribute; nothing is parsed as HTML.
"use strict";

(() => {
  const TYPES = {
    "0": "turnstile",
    "1": "capture camera",
    "2": "IPC static",
    "3": "IPC dynamic",
    "4": "access control",
  };
  const RECENT = 20;
  const body = document.body;
  const reportsUrl = body.dataset.reportsUrl;
  const statsUrl = body.dataset.statsUrl;
  const timelineUrl = body.dataset.timelineUrl;
  const filter = { gateway: "", device: "" };
  const period = Number(body.dataset.period) || 20;
  const gateways = new Map(); // gateway_sn -> {report, count}
  const recent = [];
  let since = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
  const text = (v) => (v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v));

  const viewOf = (r) => (isObject(r.view) ? r.view : { facts: [], fields: [], columns: [] });

  function gatewayKey(r) {
    const id = viewOf(r).identity;
    return typeof id === "string" && id ? id : "(unidentified)";
  }

  // The report's list of devices (under the key its format, or its documents' examples, use).
  function devicesOf(r) {
    const v = viewOf(r);
    const p = isObject(r.payload) ? r.payload : {};
    const list = v.devices_key ? p[v.devices_key] : undefined;
    return Array.isArray(list) ? list : [];
  }

  function statusBadge(status, cls) {
    const known = status === "online" || status === "offline";
    const name = known ? "status-" + status : "status-bad";
    return el("span", { class: `status ${name} ${cls}` }, known ? status : text(status) || "?");
  }

  function age(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s ago`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  }

  function tickAges() {
    const now = Date.now() / 1000;
    for (const node of document.querySelectorAll(".age[data-received-at]")) {
      const elapsed = now - Number(node.dataset.receivedAt);
      node.textContent = age(elapsed);
      node.classList.toggle("stale", elapsed > 3 * period);
    }
  }

  function metrics(ext) {
    const parts = [];
    const num = (v) => typeof v === "number";
    if (num(ext.cpu_usage)) parts.push(["CPU", `${ext.cpu_usage} %`]);
    if (num(ext.memory_usage)) {
      const size = num(ext.memory_size) ? ` of ${ext.memory_size} GB` : "";
      parts.push(["memory", `${Math.round(ext.memory_usage * 100)} % used${size}`]);
    } else if (num(ext.memory_size)) parts.push(["memory", `${ext.memory_size} GB`]);
    if (num(ext.disk_free_size) || num(ext.disk_size)) {
      const free = num(ext.disk_free_size) ? `${ext.disk_free_size} GB free` : "";
      const size = num(ext.disk_size) ? `${free ? " of " : ""}${ext.disk_size} GB` : "";
      parts.push(["disk", free + size]);
    }
    if (num(ext.temperature)) parts.push(["temperature", `${ext.temperature} °C`]);
    return el("div", { class: "metrics" },
      ...parts.map(([k, v]) => el("span", { class: "metric" }, el("b", {}, k), " ", v)));
  }

  const MEDIA_TYPES = ["photo", "rtsp", "file", "gb28181"];

  // One cell of a device row: the status as a badge, a type named, the rest as text.
  function cell(v, column, value) {
    const cls = column.replace(/_/g, "-");
    if (column === v.status) return el("td", {}, statusBadge(value, cls));
    if (column.endsWith("_type")) {
      const named = TYPES[value] ? `${TYPES[value]} (${value})`
        : MEDIA_TYPES.includes(value) ? value : null;
      return el("td", { class: named ? cls : `${cls} bad` },
        named ?? `unknown (${JSON.stringify(value) ?? "missing"})`);
    }
    const mono = column === v.ip || /_(id|location|url)$/.test(column);
    return el("td", { class: mono ? `${cls} mono` : cls }, text(value));
  }

  function deviceRows(v, devices, violations) {
    const byRow = new Map();
    const prefix = `${v.devices_key}[`;
    for (const problem of violations) {
      if (!problem.startsWith(prefix)) continue;
      const index = Number.parseInt(problem.slice(prefix.length), 10);
      byRow.set(index, [...(byRow.get(index) || []), problem]);
    }
    return devices.map((d, i) => {
      const bad = byRow.get(i);
      if (!isObject(d)) {
        return el("tr", { class: "row-bad", title: (bad || []).join("\n") },
          el("td", { colspan: v.columns.length }, `not an object: ${text(d)}`));
      }
      return el("tr", { "data-ep-ip": text(d[v.ip]),
                        class: (bad ? "row-bad " : "") + "clickable",
                        title: bad ? bad.join("\n") : "click: this device's status changes" },
        ...v.columns.map((column) => cell(v, column, d[column])));
    });
  }

  // The report's nested values (gateway_ext_data and below), as its table orders them.
  function fields(v, unmeasured) {
    const shown = v.fields.filter(([path]) => path !== "gateway_ext_data.sw_version");
    if (!shown.length && !unmeasured.length) return null;
    const short = (path) => path.replace(/^gateway_ext_data\./, "");
    return el("details", { class: "fields" },
      el("summary", {}, `${shown.length} field${shown.length === 1 ? "" : "s"} of ${v.format}` +
        (unmeasured.length ? ` · ${unmeasured.length} not measured` : "")),
      el("dl", {}, ...shown.flatMap(([path, value]) => [
        el("dt", { class: "mono" }, short(path)), el("dd", { class: "mono" }, text(value))])),
      unmeasured.length ? el("p", { class: "unmeasured" },
        "not measured by the box: ", el("span", { class: "mono" },
          unmeasured.map(short).join(", "))) : null);
  }

  const HEADED = ["gateway_name", "gateway_status", "gateway_sn"];

  function card(sn, entry) {
    const r = entry.report;
    const v = viewOf(r);
    const p = isObject(r.payload) ? r.payload : {};
    const ext = isObject(p.gateway_ext_data) ? p.gateway_ext_data : {};
    const devices = devicesOf(r);
    const online = devices.filter((d) => isObject(d) && d[v.status] === "online").length;
    const received = new Date(r.received_at * 1000);
    const alone = v.carries === "devices";
    const facts = [
      ...v.facts.filter(([key]) => !HEADED.includes(key)),
      ["X-Report-Id", r.report_id], ["format", `${r.format} at ${r.path}`],
    ].filter(([, value]) => value !== undefined && value !== null);
    const head = el("header", {},
      el("h2", {}, el("span", { class: "gw-name" },
        alone ? `devices of ${v.identity_key}` : text(p.gateway_name) || "(no name)"),
        " ", el("span", { class: "gw-sn mono" }, sn)),
      alone ? el("span", { class: "badge devices-report" }, "sub-device report")
        : statusBadge(p.gateway_status, "gw-status"),
      el("span", { class: "badge format", title: "payload versions this report conforms to" },
        matchedText(r)),
      r.rejected ? el("span", { class: "badge refused" }, "refused (422)") : null,
      el("button", { class: "show-body", type: "button", "data-action": "body" },
        "last report's body"));
    const last = el("div", { class: "last" }, "last report ",
      el("time", { class: "gw-time", datetime: received.toISOString() },
        received.toLocaleString()),
      " · ", el("span", { class: "age", "data-received-at": r.received_at }, ""),
      ` · ${entry.count} report${entry.count === 1 ? "" : "s"}`);
    const counts = el("div", { class: "counts" },
      el("span", { class: "count count-online" }, `${online} online`),
      el("span", { class: "count count-offline" }, `${devices.length - online} offline`));
    const violations = r.violations.length === 0 ? null :
      el("div", { class: "violations", role: "alert" },
        el("h3", {}, `${r.violations.length} violation${r.violations.length === 1 ? "" : "s"} of its format`),
        el("ul", {}, ...r.violations.map((v) => el("li", { class: "violation mono" }, v))));
    const table = el("table", { class: "devices" },
      el("thead", {}, el("tr", {}, ...v.columns.map((h) => el("th", {}, h)))),
      el("tbody", {}, ...deviceRows(v, devices, r.violations)));
    const unmeasured = Array.isArray(r.unmeasured) ? r.unmeasured : [];
    return el("section", {
      class: "gateway" + (r.violations.length ? " has-violations" : ""),
      "data-gateway-sn": sn,
    }, head,
    el("div", { class: "summary" },
      el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: "mono" }, text(v))])),
      el("div", {}, counts, metrics(ext), last)),
    ext.sw_version !== undefined ? el("pre", { class: "sw-version" }, text(ext.sw_version)) : null,
    fields(v, unmeasured),
    violations,
    devices.length ? table
      : el("p", { class: "no-devices" }, v.devices_key === null && v.carries === "gateway"
        ? "sub-devices come in their own report" : "no sub-devices"));
  }

  // Which of its release's formats the body conforms to, as the receiver judged it.
  function matchedText(r) {
    const formats = Array.isArray(r.formats) ? r.formats : [];
    return formats.length ? `matches ${formats.join(", ")}` : "matches no version";
  }

  function renderGateway(sn) {
    const container = document.getElementById("gateways");
    const fresh = card(sn, gateways.get(sn));
    const old = [...container.children].find((c) => c.dataset.gatewaySn === sn);
    if (old) {
      old.replaceWith(fresh);
      return;
    }
    const after = [...container.children].find((c) => c.dataset.gatewaySn > sn);
    container.insertBefore(fresh, after || null);
  }

  function renderRecent() {
    document.getElementById("recent").hidden = recent.length === 0;
    document.getElementById("recent-rows").replaceChildren(...recent.map((r, index) => {
      const n = viewOf(r).devices_key ? devicesOf(r).length : "–";
      const verdict = (r.violations.length ? `${r.violations.length} violation(s)` : "conforming") +
        ` · ${matchedText(r)}`;
      return el("tr", { class: (r.violations.length ? "row-bad " : "") + "clickable",
                        "data-index": index, title: "click: the report's body" },
        el("td", {}, new Date(r.received_at * 1000).toLocaleTimeString()),
        el("td", { class: "mono" }, gatewayKey(r)),
        el("td", { class: "mono" }, text(r.report_id)),
        el("td", {}, n),
        el("td", {}, verdict + (r.rejected ? ", refused" : "")));
    }));
  }

  // -- filters -------------------------------------------------------------

  const matches = (value, wanted) => !wanted || String(value).includes(wanted);

  function reportMatches(r) {
    if (!matches(gatewayKey(r), filter.gateway)) return false;
    if (!filter.device) return true;
    const ip = viewOf(r).ip;
    return devicesOf(r).some((d) => isObject(d) && matches(text(d[ip]), filter.device));
  }

  function applyFilters() {
    for (const section of document.querySelectorAll("section.gateway")) {
      section.hidden = !matches(section.dataset.gatewaySn, filter.gateway);
      for (const row of section.querySelectorAll("tr[data-ep-ip]")) {
        row.hidden = !matches(row.dataset.epIp, filter.device);
      }
    }
    for (const row of document.querySelectorAll("#recent-rows tr")) {
      row.hidden = !reportMatches(recent[Number(row.dataset.index)]);
    }
    const params = new URLSearchParams();
    if (filter.gateway) params.set("gateway", filter.gateway);
    if (filter.device) params.set("device", filter.device);
    const query = params.toString();
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
  }

  function setupFilters() {
    const params = new URLSearchParams(location.search);
    const inputs = { gateway: document.getElementById("filter-gateway"),
                     device: document.getElementById("filter-device") };
    for (const [name, input] of Object.entries(inputs)) {
      input.value = filter[name] = (params.get(name) || "").trim();
      input.addEventListener("input", () => {
        filter[name] = input.value.trim();
        applyFilters();
      });
    }
    document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
    document.getElementById("filter-clear").addEventListener("click", () => {
      for (const [name, input] of Object.entries(inputs)) input.value = filter[name] = "";
      applyFilters();
    });
  }

  function renderGatewayList() {
    document.getElementById("gateway-list").replaceChildren(
      ...[...gateways.keys()].sort().map((sn) => el("option", { value: sn })));
  }

  // -- detail: a report's body, a device's timeline -----------------------------

  function showDetail(title, meta, fill) {
    document.getElementById("detail-title").textContent = title;
    document.getElementById("detail-meta").replaceChildren(...meta);
    const list = document.getElementById("detail-timeline");
    const pre = document.getElementById("detail-body");
    list.hidden = pre.hidden = true;
    fill(list, pre);
    document.getElementById("detail").hidden = false;
    body.classList.add("detail-open");
  }

  function showReport(r) {
    const when = new Date(r.received_at * 1000).toLocaleString();
    const meta = [
      el("div", {}, `received ${when} at ${r.path} · X-Report-Id ${r.report_id ?? "(none)"} · ` +
        `checked as ${r.format} · ${matchedText(r)}` +
        (r.rejected ? " · refused (422)" : "")),
      r.violations.length
        ? el("ul", {}, ...r.violations.map((v) => el("li", { class: "mono" }, v)))
        : el("div", {}, "conforming"),
    ];
    showDetail(`report from ${gatewayKey(r)}`, meta, (_list, pre) => {
      pre.textContent = JSON.stringify(r.payload, null, 2);
      pre.hidden = false;
    });
  }

  async function showTimeline(sn, ip) {
    const query = new URLSearchParams({ gateway: sn, device: ip });
    let doc;
    try {
      doc = await getJson(`${timelineUrl}?${query}`);
    } catch (err) {
      showDetail(`${ip} on ${sn}`, [el("div", {}, `timeline not available: ${err.message}`)],
        () => {});
      return;
    }
    const changes = Array.isArray(doc.changes) ? doc.changes : [];
    const meta = [el("div", {}, `status changes seen by this receiver, newest first ` +
      `(${changes.length}${changes.length >= 100 ? ", the latest 100" : ""})`)];
    showDetail(`${ip} on ${sn}`, meta, (list) => {
      list.replaceChildren(...changes.slice().reverse().map((c) =>
        el("li", { "data-status": text(c.status) },
          new Date(c.received_at * 1000).toLocaleString(), " · ",
          statusBadge(c.status, "tl-status"),
          ` · report ${c.report_id ?? "(no id)"}`)));
      list.hidden = false;
    });
  }

  function setupClicks() {
    document.getElementById("detail-close").addEventListener("click", () => {
      document.getElementById("detail").hidden = true;
      body.classList.remove("detail-open");
    });
    document.getElementById("gateways").addEventListener("click", (event) => {
      const section = event.target.closest("section.gateway");
      if (!section) return;
      const sn = section.dataset.gatewaySn;
      if (event.target.closest("[data-action=body]")) {
        showReport(gateways.get(sn).report);
        return;
      }
      const row = event.target.closest("tr[data-ep-ip]");
      if (row && row.dataset.epIp) showTimeline(sn, row.dataset.epIp);
    });
    document.getElementById("recent-rows").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-index]");
      if (row) showReport(recent[Number(row.dataset.index)]);
    });
  }

  function ingest(reports) {
    const touched = new Set();
    for (const r of reports) {
      since = r.received_at;
      const sn = gatewayKey(r);
      const entry = gateways.get(sn) || { count: 0 };
      gateways.set(sn, { report: r, count: entry.count + 1 });
      touched.add(sn);
      recent.unshift(r);
    }
    recent.splice(RECENT);
    for (const sn of touched) renderGateway(sn);
    document.getElementById("empty").hidden = gateways.size > 0;
    renderRecent();
    renderGatewayList();
    applyFilters();
    tickAges();
  }

  function setConnection(ok, detail) {
    const conn = document.getElementById("conn");
    conn.textContent = ok ? "live" : `disconnected (${detail})`;
    conn.classList.toggle("down", !ok);
  }

  async function getJson(url) {
    const res = await fetch(url, { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return res.json();
  }

  async function poll() {
    try {
      const url = since === null ? reportsUrl : `${reportsUrl}?since=${encodeURIComponent(since)}`;
      const [reports, stats] = await Promise.all([getJson(url), getJson(statsUrl)]);
      if (reports.length) ingest(reports);
      document.getElementById("stats").textContent =
        `${stats.received} received · ${stats.nonconforming} non-conforming · ` +
        `${stats.rejected} refused · ${stats.faulted} faulted`;
      setConnection(true);
    } catch (err) {
      setConnection(false, err.message);
    } finally {
      setTimeout(poll, 1000);
    }
  }

  setupFilters();
  setupClicks();
  setInterval(tickAges, 1000);
  poll();
})();
