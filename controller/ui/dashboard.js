// The ryute dashboard: plain JavaScript, no build step, no library.
// Everything that came from a topology file, a switch or a model file is written with
// textContent or setAttribute, never parsed as HTML. The API token is what the operator types
// into the page, kept in this tab's sessionStorage only.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "ryute-api-token";
  const MAX_RECORDS = 1000;   // decision records kept in the page
  const TIMELINE_POINTS = 300;
  const LOG_ROWS = 200;
  const BUSIEST = 5;          // links labelled with their utilization
  const COLOURS = [[0, [26, 152, 80]], [0.25, [145, 207, 96]], [0.5, [254, 224, 139]],
                   [0.75, [252, 141, 89]], [0.9, [215, 48, 39]]];

  const $ = (id) => document.getElementById(id);
  const page = {
    graph: null, version: null, links: [], nodes: [], records: [], lastSeq: 0,
    util: [], down: new Set(), measured: false, status: null, selected: null,
    pollMs: 5000, detailsSeq: -1,
  };

  // -- helpers ------------------------------------------------------------------------------
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function html(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  const finite = (v) => typeof v === "number" && Number.isFinite(v);
  const num = (v, digits = 3) => (finite(v) ? v.toFixed(digits) : "–");
  const pct = (v) => (finite(v) ? `${Math.round(v * 100)} %` : "–");
  const clock = (t) => (finite(t) ? new Date(t * 1000).toLocaleTimeString([], {hour12: false}) : "–");
  const mbps = (v) => (finite(v) ? `${v >= 100 ? v.toFixed(0) : v.toPrecision(3)} Mbit/s` : "–");

  function colour(u) {
    if (!finite(u)) return "var(--unknown)";
    if (u >= COLOURS[COLOURS.length - 1][0]) return `rgb(${COLOURS[COLOURS.length - 1][1]})`;
    let k = 0;
    while (u > COLOURS[k + 1][0]) k += 1;
    const [a, ca] = COLOURS[k], [b, cb] = COLOURS[k + 1];
    const f = Math.max(0, (u - a) / (b - a));
    return `rgb(${ca.map((c, i) => Math.round(c + f * (cb[i] - c))).join(",")})`;
  }

  async function getJSON(path) {
    const response = await fetch(path, {headers: {"X-Ryute-Client": "dashboard"}, cache: "no-store"});
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (!response.ok) {
      throw new Error(body && body.error ? body.error : `${response.status} ${response.statusText}`);
    }
    return body;
  }

  // -- the map ------------------------------------------------------------------------------
  async function loadGraph() {
    const graph = await getJSON("/te/v1/dashboard/graph");
    page.graph = graph;
    page.version = graph.version;
    page.pollMs = Math.max(200, (graph.poll_interval_s || 5) * 1000);
    $("topology-name").textContent = graph.topology || "topology from discovery";
    $("map-info").textContent = `${graph.nodes.length} switches, ${graph.links.length} links` +
      (graph.coordinates === "layout" ? " (computed layout)" : graph.coordinates ? " (coordinates from the topology file)" : "");
    drawMap(graph);
    updateTokenState();
  }

  function drawMap(graph) {
    const map = $("map");
    map.setAttribute("viewBox", `0 0 ${graph.width} ${graph.height}`);
    for (const id of ["links", "link-labels", "nodes", "node-labels"]) $(id).replaceChildren();
    const caps = graph.capacity_mbps.map((c) => Math.log(Math.max(c, 1e-9)));
    const low = Math.min(...caps), high = Math.max(...caps);
    const few = graph.nodes.length <= 40;
    page.links = graph.links.map(([a, b], i) => {
      const [x1, y1] = graph.xy[a], [x2, y2] = graph.xy[b];
      // Each direction is the half of the line on its sender's side, as on a weathermap.
      const width = 1.5 + (high > low ? (3 * (caps[i] - low)) / (high - low) : 1.5);
      const line = svg("line", {
        x1, y1, x2: (x1 + x2) / 2, y2: (y1 + y2) / 2, class: "link", "stroke-width": width,
        "data-i": i, "data-src": graph.nodes[a], "data-dst": graph.nodes[b]});
      const title = svg("title", {}, `${graph.nodes[a]} → ${graph.nodes[b]}`);
      line.appendChild(title);
      line.addEventListener("click", () => select({kind: "link", i}));
      $("links").appendChild(line);
      return {line, title, src: graph.nodes[a], dst: graph.nodes[b], mid: [(3 * x1 + x2) / 4, (3 * y1 + y2) / 4]};
    });
    page.nodes = graph.nodes.map((name, i) => {
      const [x, y] = graph.xy[i];
      const circle = svg("circle", {cx: x, cy: y, r: few ? 7 : 4.5, class: "node", "data-name": name});
      circle.appendChild(svg("title", {}, name));
      circle.addEventListener("click", () => select({kind: "node", name}));
      $("nodes").appendChild(circle);
      if (few) {  // labels near the right edge end at their node
        const right = x > graph.width * 0.85;
        $("node-labels").appendChild(svg("text", {x: right ? x - 9 : x + 9, y: y - 7,
          "text-anchor": right ? "end" : "start"}, name));
      }
      return circle;
    });
    page.selected = null;
    paintLinks();
  }

  function paintLinks() {
    const graph = page.graph;
    if (!graph) return;
    page.links.forEach((link, i) => {
      const u = page.measured ? page.util[i] : undefined;
      const down = page.down.has(i);
      link.line.style.stroke = colour(u);
      link.line.classList.toggle("down", down);
      link.title.textContent = `${link.src} → ${link.dst}: ${down ? "down" : pct(u)} ` +
        `(capacity ${mbps(graph.capacity_mbps[i])})`;
    });
    const labels = $("link-labels");
    labels.replaceChildren();
    if (!page.measured) return;
    const busiest = page.util.map((u, i) => [u, i])
      .filter(([u, i]) => finite(u) && u > 0 && !page.down.has(i))
      .sort((x, y) => y[0] - x[0]).slice(0, BUSIEST);
    for (const [u, i] of busiest) {
      const [x, y] = page.links[i].mid;
      labels.appendChild(svg("text", {x, y: y - 4, class: "busy", "data-i": i}, pct(u)));
    }
  }

  // -- what loads a link or a switch --------------------------------------------------------
  function select(what) {
    page.selected = what;
    for (const link of page.links) link.line.classList.remove("selected");
    for (const node of page.nodes) node.classList.remove("selected");
    if (what.kind === "link") page.links[what.i].line.classList.add("selected");
    else page.nodes.find((n) => n.getAttribute("data-name") === what.name)?.classList.add("selected");
    showDetails();
  }

  async function showDetails() {
    const what = page.selected;
    if (!what) return;
    page.detailsSeq = page.lastSeq;
    let path;
    if (what.kind === "link") {
      const link = page.links[what.i];
      path = `/te/v1/dashboard/link?src=${encodeURIComponent(link.src)}&dst=${encodeURIComponent(link.dst)}`;
    } else {
      path = `/te/v1/dashboard/node?name=${encodeURIComponent(what.name)}`;
    }
    try {
      const answer = await getJSON(path);
      if (page.selected === what) renderDetails(what, answer);
    } catch (error) {
      $("details-summary").textContent = `cannot show it: ${error.message}`;
      $("details-table").replaceChildren();
    }
  }

  function renderDetails(what, d) {
    const shown = d.od_pairs.length < d.total_od_pairs ? ` (the ${d.od_pairs.length} busiest shown)` : "";
    if (what.kind === "link") {
      const l = d.link, p = d.predicted_utilization;
      $("details-title").textContent = `Link ${l.src} → ${l.dst}`;
      $("details-summary").textContent =
        `${l.up ? "up" : "DOWN"}; measured utilization ${pct(l.utilization)} (${mbps(l.load_mbps)} of ` +
        `${mbps(l.capacity_mbps)}). Predicted on the last matrix: installed ${pct(p.installed)}, ` +
        `agent ${pct(p.agent)}, fallback ${pct(p.fallback)}. ${d.total_od_pairs} OD pairs have a ` +
        `path over it${shown}.`;
    } else {
      $("details-title").textContent = `Switch ${d.node.name}`;
      $("details-summary").textContent =
        `dpid ${d.node.dpid ?? "–"}, ${d.node.connected ? "connected" : "not connected"}; ` +
        `${d.total_od_pairs} OD pairs have a path through it${shown}; the installed decision ` +
        `puts ${mbps(d.total_load_mbps)} on those paths.`;
    }
    const table = $("details-table");
    const head = html("tr");
    for (const name of ["OD pair / path", "demand", "here", "installed", "agent", "fallback"]) {
      head.appendChild(html("th", name, name === "OD pair / path" ? "" : "num"));
    }
    const rows = [head];
    for (const od of d.od_pairs) {
      const row = html("tr", null, "od");
      row.append(html("td", `${od.src} → ${od.dst}`), html("td", mbps(od.demand_mbps), "num"),
        html("td", mbps(od.load_mbps), "num"), html("td"), html("td"), html("td"));
      rows.push(row);
      for (const p of od.paths) {
        const pathRow = html("tr", null, p.uses ? "path uses" : "path");
        pathRow.append(html("td", `${p.uses ? "● " : ""}${p.nodes.join(" → ")}`), html("td"), html("td"),
          html("td", num(p.installed), "num"), html("td", num(p.agent), "num"),
          html("td", num(p.fallback), "num"));
        rows.push(pathRow);
      }
    }
    table.replaceChildren(...rows);
  }

  // -- mode and health ----------------------------------------------------------------------
  function renderStatus(status, model) {
    const mode = $("mode-value");
    mode.textContent = status.mode;
    mode.className = `mode-${status.mode}`;
    $("source-value").textContent = status.source;
    $("trust-value").textContent = !status.model ? "no model loaded" :
      status.health.trusted ? "trusted" : `untrusted (healthy streak ${status.health.healthy_streak})`;
    $("mlu-value").textContent = num(status.mlu);
    const age = finite(status.last_statistics) ? Math.max(0, Date.now() / 1000 - status.last_statistics) : null;
    $("stats-value").textContent = age === null ? "none yet" : `${age.toFixed(1)} s ago, every ${page.graph ? page.graph.poll_interval_s : "?"} s`;
    const r = status.rollout;
    $("rollout-value").textContent = !r ? "none" :
      `${pct(r.fraction)} on the agent's split` + (r.ingress ? ` at ${r.ingress.join(", ")}` : "") +
      (r.step ? `, +${pct(r.step)} after ${r.widen_after} good intervals` : "") +
      (r.rolled_back ? `; rolled back: ${r.rolled_back}` : "");
    const reasons = $("reasons");
    reasons.replaceChildren(...(status.health.reasons || []).map((reason) => html("li", reason)));
    $("mode-shadow").classList.toggle("current", status.mode === "shadow");
    $("mode-active").classList.toggle("current", status.mode === "active");
    renderModel(model);
  }

  function renderModel(model) {
    const facts = $("model-facts");
    const rows = [];
    const add = (name, value) => {
      if (value === null || value === undefined || value === "") return;
      rows.push(html("dt", name), html("dd", Array.isArray(value) ? value.join(" – ") : value));
    };
    if (!model) {
      add("model", "none: the fallback decides alone");
    } else {
      add("id", model.id);
      add("file", model.path);
      add("resolved", model.resolved);
      add("trained for", model.generalist ? "many networks (the generalist)" : model.topology);
      add("transferred from", model.transferred_from);
      add("created", model.created);
      add("training data", model.traffic);
      add("train dates", model.train_dates);
      add("validation dates", model.validation_dates);
      const scores = Object.entries(model.validation || {}).map(([name, value]) => `${name} ${num(value)}`);
      if (scores.length) add("validation", `${scores.join(", ")} (MLU over the optimum)`);
    }
    facts.replaceChildren(...rows);
  }

  // -- the shadow/active switch -------------------------------------------------------------
  const storedToken = () => sessionStorage.getItem(TOKEN_KEY) || "";

  function updateTokenState() {
    const required = page.graph ? page.graph.token_required : true;
    $("token-state").textContent = !required
      ? "This controller takes changes without a token (loopback only)."
      : storedToken() ? "A token is set for this browser tab (session storage only)."
        : "Changing the mode needs the API token.";
  }

  function message(text, ok) {
    const node = $("mode-message");
    node.textContent = text;
    node.className = ok ? "ok" : "error";
  }

  async function setMode(mode) {
    const required = page.graph ? page.graph.token_required : true;
    const token = storedToken();
    if (required && !token) {
      message("Type the API token first: changing the mode needs it.", false);
      $("token-input").focus();
      return;
    }
    const headers = {"Content-Type": "application/json", "X-Ryute-Client": "dashboard"};
    if (token) headers.Authorization = `Bearer ${token}`;
    let response, body = null;
    try {
      response = await fetch("/te/v1/mode", {method: "PUT", headers, body: JSON.stringify({mode})});
      body = await response.json();
    } catch (error) {
      message(`no answer from the controller: ${error.message}`, false);
      return;
    }
    if (response.ok) {
      message(`Mode is now ${body.mode} (installed: ${body.source}).`, true);
    } else {
      if (response.status === 403 && token) sessionStorage.removeItem(TOKEN_KEY);
      message(`Refused (${response.status}): ${body && body.error ? body.error : response.statusText}` +
        (response.status === 403 && token ? ". The token was forgotten; type it again." : ""), false);
      updateTokenState();
    }
    poll(true);
  }

  // -- the timeline -------------------------------------------------------------------------
  function changes(record, previous) {
    const marks = [];
    if (record.mode_changes) {
      for (const c of record.mode_changes) marks.push(["mode", `${c.from} → ${c.to} by ${c.by} at ${clock(c.at)}`]);
    } else if (previous && previous.mode !== record.mode) {
      marks.push(["mode", `${previous.mode} → ${record.mode}`]);
    }
    if (previous) {
      const before = new Set((previous.down_links || []).map((l) => l.join("→")));
      const now = new Set((record.down_links || []).map((l) => l.join("→")));
      const down = [...now].filter((l) => !before.has(l)), up = [...before].filter((l) => !now.has(l));
      if (down.length || up.length) {
        marks.push(["link", [down.length ? `down: ${down.join(", ")}` : "", up.length ? `up: ${up.join(", ")}` : ""]
          .filter(Boolean).join("; ")]);
      }
    }
    return marks;
  }

  function drawTimeline() {
    const chart = $("timeline");
    const width = Math.max(300, chart.clientWidth || 800), height = 220;
    const left = 42, right = 10, top = 10, bottom = 22;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const records = page.records.slice(-TIMELINE_POINTS);
    const parts = [];
    if (!records.length) {
      parts.push(svg("text", {x: left, y: height / 2}, "no decision yet"));
      chart.replaceChildren(...parts);
      $("timeline-info").textContent = "";
      return;
    }
    const series = {
      measured: (r) => r.measured_mlu, fallback: (r) => r.predicted_mlu.fallback,
      agent: (r) => r.predicted_mlu.agent,
    };
    const values = records.flatMap((r) => Object.values(series).map((f) => f(r))).filter(finite);
    const ymax = Math.max(0.1, ...values) * 1.15;
    const t0 = records[0].time, t1 = Math.max(records[records.length - 1].time, t0 + 1e-3);
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
    const y = (v) => top + (1 - v / ymax) * (height - top - bottom);
    parts.push(svg("line", {x1: left, y1: y(0), x2: width - right, y2: y(0), class: "axis"}),
      svg("line", {x1: left, y1: top, x2: left, y2: y(0), class: "axis"}));
    for (const v of [0, ymax / 2, ymax / 1.15]) {
      parts.push(svg("text", {x: 4, y: y(v) + 4}, v.toFixed(2)));
    }
    if (ymax > 1) {
      parts.push(svg("line", {x1: left, y1: y(1), x2: width - right, y2: y(1), class: "axis", "stroke-dasharray": "3 3"}));
    }
    parts.push(svg("text", {x: left, y: height - 6}, clock(t0)),
      svg("text", {x: width - right - 60, y: height - 6}, clock(t1)));
    records.forEach((record, k) => {
      for (const [kind, text] of changes(record, records[k - 1])) {
        const mark = svg("line", {x1: x(record.time), y1: top, x2: x(record.time), y2: y(0), class: kind});
        mark.appendChild(svg("title", {}, text));
        parts.push(mark);
      }
    });
    for (const [name, value] of Object.entries(series)) {
      const points = records.filter((r) => finite(value(r)))
        .map((r) => `${x(r.time).toFixed(1)},${y(value(r)).toFixed(1)}`);
      parts.push(svg("polyline", {points: points.join(" "), class: name, "data-points": points.length}));
    }
    chart.replaceChildren(...parts);
    $("timeline-info").textContent = `last ${records.length} decisions`;
    renderEvidence(records);
  }

  function renderEvidence(records) {
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const both = records.filter((r) => r.mode === "shadow" && finite(r.predicted_mlu.agent) && finite(r.predicted_mlu.fallback));
    if (!both.length) {
      $("evidence").textContent = "";
      return;
    }
    const agent = mean(both.map((r) => r.predicted_mlu.agent));
    const fallback = mean(both.map((r) => r.predicted_mlu.fallback));
    const measured = both.map((r) => r.measured_mlu).filter(finite);
    $("evidence").textContent =
      `Shadow evidence over ${both.length} intervals: the fallback routed` +
      (measured.length ? ` (measured MLU ${num(mean(measured))})` : "") +
      `; predicted on the same matrices, had the agent acted the MLU would have been ` +
      `${num(agent)} instead of ${num(fallback)} (${agent <= fallback ? "" : "+"}${num(((agent - fallback) / Math.max(fallback, 1e-9)) * 100, 1)} %).`;
  }

  // -- the decision log ---------------------------------------------------------------------
  function why(record) {
    const parts = [...(record.reasons || [])];
    if (record.action) parts.push(record.action);
    if (record.transition) parts.push(`agent ${record.transition}`);
    for (const c of record.mode_changes || []) parts.push(`mode ${c.from} → ${c.to} by ${c.by} at ${clock(c.at)}`);
    if (record.down_links && record.down_links.length) {
      parts.push(`down: ${record.down_links.map((l) => l.join("→")).join(", ")}`);
    }
    return parts.join("; ");
  }

  function renderLog() {
    const filter = $("log-filter").value.trim().toLowerCase();
    const source = $("log-source").value;
    const notable = $("log-notable").checked;
    const rows = [];
    let matching = 0;
    for (let k = page.records.length - 1; k >= 0; k -= 1) {
      const r = page.records[k];
      const text = why(r);
      if (source && r.source !== source) continue;
      if (notable && !text) continue;
      const cells = [r.seq, clock(r.time), r.mode, r.source, r.trusted ? "yes" : "no",
        num(r.predicted_mlu.fallback), num(r.predicted_mlu.agent), num(r.measured_mlu), text];
      if (filter && !cells.join(" ").toLowerCase().includes(filter)) continue;
      matching += 1;
      if (rows.length >= LOG_ROWS) continue;
      const row = html("tr", null, r.trusted ? "" : "untrusted");
      row.setAttribute("data-seq", r.seq);
      cells.forEach((cell, i) => row.appendChild(html("td", cell, i === 8 ? "why" : i >= 5 && i <= 7 ? "num" : "")));
      rows.push(row);
    }
    $("log-body").replaceChildren(...rows);
    $("log-info").textContent = `${matching} of ${page.records.length} shown` +
      (matching > LOG_ROWS ? ` (newest ${LOG_ROWS})` : "") + ", newest first";
  }

  // Whether anything changed (then the timeline and the log are drawn again).
  function mergeRecords(records) {
    let changed = false;
    for (const record of records) {
      if (record.seq > page.lastSeq) {
        page.records.push(record);
        page.lastSeq = record.seq;
        changed = true;
      } else {
        const k = page.records.findIndex((r) => r.seq === record.seq);
        if (k >= 0 && JSON.stringify(page.records[k]) !== JSON.stringify(record)) {
          page.records[k] = record;  // its measured MLU came an interval later
          changed = true;
        }
      }
    }
    if (page.records.length > MAX_RECORDS) page.records.splice(0, page.records.length - MAX_RECORDS);
    return changed;
  }

  // -- polling ------------------------------------------------------------------------------
  let timer = null;
  async function poll(now) {
    if (now && timer) clearTimeout(timer);
    timer = null;
    const badge = $("connection");
    try {
      const live = await getJSON(`/te/v1/dashboard/live?since=${Math.max(0, page.lastSeq - 1)}`);
      if (page.status && live.status.uptime_s < page.status.uptime_s) {  // a restarted controller
        page.records = [];
        page.lastSeq = 0;
        drawTimeline();
        renderLog();
      }
      if (!page.graph || live.version !== page.version) await loadGraph();
      page.util = live.util;
      page.down = new Set(live.down);
      page.measured = live.measured;
      page.status = live.status;
      const changed = mergeRecords(live.records);
      paintLinks();
      renderStatus(live.status, live.model);
      if (changed) {
        drawTimeline();
        renderLog();
      }
      if (page.selected && page.detailsSeq !== page.lastSeq) showDetails();
      badge.textContent = `live, every ${page.graph.poll_interval_s} s`;
      badge.className = "badge ok";
    } catch (error) {
      badge.textContent = `no answer: ${error.message}`;
      badge.className = "badge bad";
    }
    if (!timer) timer = setTimeout(poll, page.pollMs);
  }

  function start() {
    $("mode-shadow").addEventListener("click", () => setMode("shadow"));
    $("mode-active").addEventListener("click", () => setMode("active"));
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value;
      $("token-input").value = "";
      if (value) {
        sessionStorage.setItem(TOKEN_KEY, value);
        message("Token set for this tab.", true);
      }
      updateTokenState();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      message("Token forgotten.", true);
      updateTokenState();
    });
    for (const id of ["log-filter", "log-source", "log-notable"]) $(id).addEventListener("input", renderLog);
    window.addEventListener("resize", drawTimeline);
    updateTokenState();
    poll();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
