// Cairn's built-in dashboard. Reads the serving node's own JSON-RPC (`POST /`, one batch a
// second) and its WebSocket (`/ws`: the head moves the moment a block is finalized), and
// draws everything with the DOM and SVG: no dependencies, no build step.
// Everything from the node is written with textContent (never parsed as HTML).
"use strict";

(function () {
  const POLL_MS = 1000;
  const SLOW_EVERY = 5; // validators and evidence: every 5th poll
  const BIN_S = 5; // chart bin, seconds (the node's bins are 1 s)
  const CHART_BINS = 60; // 5 minutes
  const SUMMARIES_MAX = 256; // getBlockSummaries bound (BLOCK_SUMMARIES_MAX)
  const PARTICIPATION_BLOCKS = 100; // recent blocks the validator table covers
  const WS_RETRY_MS = [1000, 2000, 5000, 10000, 30000]; // reconnect delays, then the last

  const compact = new URLSearchParams(window.location.search).has("compact");
  if (compact) document.body.classList.add("compact");

  const state = {
    polls: 0,
    blocks: [], // the latest PARTICIPATION_BLOCKS, ascending: {height, txs, proposer, signers}
    throughput: { binMs: 1000, bins: [] }, // getThroughput: per second, by the node's clock
    status: null,
    validators: [],
    peers: [],
    evidence: [],
    wsBlocks: 0, // blocks learned over the WebSocket
    wsLive: false,
  };

  const $ = (id) => document.getElementById(id);
  function setText(id, text) {
    const el = $(id);
    if (el && el.textContent !== text) el.textContent = text;
  }
  function short(s, n) {
    s = String(s);
    return s.length > 2 * n + 1 ? s.slice(0, n) + "…" + s.slice(-n) : s;
  }
  function fmt(n, digits) {
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits || 0 });
  }
  function row(cells, cls) {
    const tr = document.createElement("tr");
    if (cls) tr.className = cls;
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    }
    return tr;
  }
  function fillBody(id, rows, emptyText, columns) {
    const body = $(id);
    if (!body) return;
    const frag = document.createDocumentFragment();
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = columns;
      td.textContent = emptyText;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    for (const r of rows) frag.appendChild(r);
    body.replaceChildren(frag);
  }

  // One JSON-RPC 2.0 batch; answers by id. Throws on transport errors.
  async function rpcBatch(calls) {
    const body = calls.map((c, i) => ({ jsonrpc: "2.0", id: i, method: c[0], params: c[1] }));
    const res = await fetch("/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
    });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const answers = await res.json();
    const out = new Array(calls.length).fill(undefined);
    for (const a of Array.isArray(answers) ? answers : [answers]) {
      if (a && typeof a.id === "number" && a.id < out.length) {
        out[a.id] = a.error ? { error: a.error } : { result: a.result };
      }
    }
    return out;
  }

  function addBlocks(summaries) {
    for (const b of summaries) {
      const last = state.blocks.length ? state.blocks[state.blocks.length - 1].height : -1;
      if (b.height <= last) continue;
      state.blocks.push({ height: b.height, txs: b.txCount, proposer: b.proposer, signers: b.signers });
    }
    if (state.blocks.length > PARTICIPATION_BLOCKS) {
      state.blocks.splice(0, state.blocks.length - PARTICIPATION_BLOCKS);
    }
  }

  async function poll() {
    const slow = state.polls % SLOW_EVERY === 0;
    const last = state.blocks.length ? state.blocks[state.blocks.length - 1].height : null;
    const head = state.status ? state.status.latestHeight : null;
    // New blocks since the last poll; the latest ones at first or after falling behind.
    const restart = last === null || (head !== null && head - last > SUMMARIES_MAX);
    const summaries = restart
      ? ["getBlockSummaries", { count: PARTICIPATION_BLOCKS }]
      : ["getBlockSummaries", { count: SUMMARIES_MAX, fromHeight: last + 1 }];
    const calls = [["getStatus", null], summaries, ["getPeers", null], ["getThroughput", null]];
    if (slow) calls.push(["getValidators", null], ["getEvidence", null]);
    const answers = await rpcBatch(calls);
    const value = (i, what) => {
      const a = answers[i];
      if (!a) throw new Error(what + ": no answer");
      if (a.error) throw new Error(what + ": " + a.error.message);
      return a.result;
    };
    state.status = value(0, "getStatus");
    if (restart) state.blocks = [];
    addBlocks(value(1, "getBlockSummaries"));
    state.peers = value(2, "getPeers");
    state.throughput = value(3, "getThroughput");
    if (slow) {
      state.validators = value(4, "getValidators");
      state.evidence = value(5, "getEvidence");
    }
    state.polls++;
  }

  function renderStatus() {
    const s = state.status;
    setText("chain-id", s.chainId);
    setText("node-version", "v" + s.nodeVersion);
    setText("node-role", s.validatorName ? "validator " + s.validatorName : "full node");
    setText("head-height", String(s.latestHeight));
    setText("head-hash", short(s.latestHash, 8));
    setText(
      "finality-latency",
      s.finalityLatencyMs === null || s.finalityLatencyMs === undefined
        ? "–"
        : fmt(s.finalityLatencyMs) + " ms"
    );
    setText("mempool", fmt(s.mempoolTxs || 0));
    setText("epoch-view", fmt(s.epoch || 0) + " / " + fmt(s.view || 0));
    setText("peer-count", fmt(s.peerCount) + " peers");
    const sync = $("sync-state");
    sync.textContent = s.syncing ? "syncing" : "in sync";
    sync.className = "badge " + (s.syncing ? "warn" : "ok");
    const leaders = (s.upcomingLeaders || []).map((l) => l.name + " (view " + l.view + ")");
    setText("leaders", leaders.length ? leaders.join(" → ") : "–");
  }

  // TPS per 5 s bin over the last 5 minutes, from the node's 1 s bins (complete seconds by
  // its clock), grouped from the newest back; only the seconds the node has counted. The
  // oldest group may be partial (a node up for less than 5 s still shows a point): its rate
  // is over the seconds it covers.
  function tpsSeries() {
    const bins = state.throughput.bins || [];
    const binMs = state.throughput.binMs || 1000;
    const secondsPerBin = (BIN_S * 1000) / binMs;
    const points = [];
    for (let k = 0; k < CHART_BINS; k++) {
      const end = bins.length - k * secondsPerBin;
      if (end <= 0) break;
      const start = Math.max(0, end - secondsPerBin);
      let txs = 0;
      for (let i = start; i < end; i++) txs += bins[i].txs;
      points.unshift({ k, tps: txs / (((end - start) * binMs) / 1000) });
    }
    return points;
  }

  function renderChart() {
    const points = tpsSeries();
    const line = $("tps-line");
    const max = Math.max(1, ...points.map((p) => p.tps));
    const top = niceCeil(max);
    const W = 800;
    const H = 200;
    const coords = points.map((p) => {
      const x = W - (p.k + 0.5) * (W / CHART_BINS);
      const y = H - (p.tps / top) * (H - 10);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    line.setAttribute("points", coords.join(" "));
    line.setAttribute("data-points", String(coords.length));
    const grid = $("tps-grid");
    const svgNS = "http://www.w3.org/2000/svg";
    const frag = document.createDocumentFragment();
    for (let k = 1; k <= 4; k++) {
      const y = H - (k / 4) * (H - 10);
      const l = document.createElementNS(svgNS, "line");
      l.setAttribute("x1", "0");
      l.setAttribute("x2", String(W));
      l.setAttribute("y1", y.toFixed(1));
      l.setAttribute("y2", y.toFixed(1));
      frag.appendChild(l);
      const t = document.createElementNS(svgNS, "text");
      t.setAttribute("x", "4");
      t.setAttribute("y", (y + 12).toFixed(1));
      t.textContent = fmt((top * k) / 4, 1);
      frag.appendChild(t);
    }
    grid.replaceChildren(frag);
    setText("tps-axis-max", "max " + fmt(max, 1) + " tx/s");
    // Headline: the last 60 complete seconds (fewer just after the node started).
    const recent = (state.throughput.bins || []).slice(-60);
    const span = Math.max(1, recent.length);
    setText("tps-now", fmt(recent.reduce((a, b) => a + b.txs, 0) / span, 1));
    setText("bps-now", fmt(recent.reduce((a, b) => a + b.blocks, 0) / span, 2) + " blocks/s");
  }

  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function renderValidators() {
    const recent = state.blocks.slice(-PARTICIPATION_BLOCKS);
    const certified = recent.filter((b) => Array.isArray(b.signers));
    const signed = new Map();
    const proposed = new Map();
    for (const b of certified) for (const a of b.signers) signed.set(a, (signed.get(a) || 0) + 1);
    for (const b of recent) proposed.set(b.proposer, (proposed.get(b.proposer) || 0) + 1);
    const leaders = (state.status && state.status.upcomingLeaders) || [];
    const rows = state.validators.map((v) => {
      const n = signed.get(v.address) || 0;
      const share = certified.length ? Math.round((100 * n) / certified.length) + "%" : "–";
      const lead = leaders.findIndex((l) => l.address === v.address);
      const leading = lead === 0 ? "now" : lead > 0 ? "in " + lead + " view" + (lead > 1 ? "s" : "") : "";
      const tr = row(
        [
          v.name,
          short(v.address, 10),
          fmt(v.votingPower),
          share + " (" + n + "/" + certified.length + ")",
          fmt(proposed.get(v.address) || 0),
          leading,
        ],
        lead === 0 ? "leader" : ""
      );
      return tr;
    });
    fillBody("validators-body", rows, "no validators", 6);
    setText(
      "validators-hint",
      "over the last " + recent.length + " blocks, " + certified.length + " with their own certificate"
    );
  }

  function renderPeers() {
    const byPeer = new Map(state.validators.map((v) => [v.peerId, v.name]));
    const rows = state.peers.map((p) =>
      row([
        short(p.peerId, 8),
        p.address ? p.address.replace(/\/p2p\/.*$/, "") : "–",
        p.isValidator ? byPeer.get(p.peerId) || "yes" : "no",
        p.direction || "–",
        p.admission || "–",
        p.score === null || p.score === undefined ? "–" : fmt(p.score, 2),
      ])
    );
    fillBody("peers-body", rows, "no peers connected", 6);
  }

  function renderEvidence() {
    const rows = state.evidence.map((e) => row([e.validator + " (#" + e.validatorIndex + ")", fmt(e.view), e.kind]));
    fillBody("evidence-body", rows, "none", 3);
  }

  function render() {
    renderStatus();
    renderChart();
    renderValidators();
    renderPeers();
    renderEvidence();
  }

  async function tick() {
    const conn = $("conn-state");
    try {
      await poll();
      render();
      document.body.dataset.updates = String(state.polls);
      delete document.body.dataset.error;
      conn.textContent = "live";
      conn.className = "badge ok";
      conn.title = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      document.body.dataset.error = String(e && e.message ? e.message : e);
      conn.textContent = "node unreachable";
      conn.className = "badge bad";
      conn.title = document.body.dataset.error;
    }
    window.setTimeout(tick, POLL_MS);
  }

  // The head over the WebSocket: a `blocks` subscription moves the head height and hash as
  // soon as the node finalizes a block; the 1 s poll fills in the rest. When the socket is
  // unavailable (WebSocket off, a proxy without upgrades) the poll alone keeps the page
  // current; reconnects back off (WS_RETRY_MS).
  function followHead(attempt) {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    let ws;
    try {
      ws = new WebSocket(scheme + window.location.host + "/ws");
    } catch (e) {
      return;
    }
    const retry = () => {
      state.wsLive = false;
      const delay = WS_RETRY_MS[Math.min(attempt, WS_RETRY_MS.length - 1)];
      window.setTimeout(() => followHead(attempt + 1), delay);
    };
    ws.onopen = () => {
      attempt = 0;
      ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscribe", params: { kind: "blocks" } }));
    };
    ws.onmessage = (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (m.id === 1) {
        state.wsLive = !m.error;
        document.body.dataset.ws = m.error ? "refused" : "subscribed";
        return;
      }
      if (m.method !== "subscription" || !m.params || !m.params.result) return;
      const b = m.params.result;
      const h = b.header && b.header.height;
      if (typeof h !== "number" || !state.status || h <= state.status.latestHeight) return;
      state.status.latestHeight = h;
      state.status.latestHash = b.hash;
      state.wsBlocks++;
      document.body.dataset.wsBlocks = String(state.wsBlocks);
      setText("head-height", String(h));
      setText("head-hash", short(b.hash, 8));
    };
    ws.onclose = retry;
  }

  tick();
  followHead(0);
})();
