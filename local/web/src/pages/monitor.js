// Monitoring: uPlot charts seeded from GET /api/metrics?minutes=N (the persisted samples)
// and kept moving by /ws/monitoring/stream (one sample per MONITOR_INTERVAL_MS locally,
// one a minute on AWS). Only the chosen window is kept: older points fall off the left.
import "uplot/dist/uPlot.min.css";
import "../live.css";
import uPlot from "uplot";
import { api, describeError } from "../lib/api.js";
import {
  consoleConfig,
  describeClose,
  isFinalClose,
  liveSocketUrl,
  setStatus,
} from "../lib/live.js";
import { mountShell, showMessage } from "../lib/shell.js";

mountShell("monitor");

const RETRY_MS = [1000, 2000, 4000, 8000, 15000];
const HEIGHT = 220;
const percent = (value) => (value == null ? null : value);
const ratio = (value) => (value == null ? null : Math.round(value * 1000) / 10);

// Each chart: its series, read out of a sample.
const CHARTS = [
  {
    id: "cpu",
    title: "CPU",
    unit: "%",
    max: 100,
    series: [{ label: "CPU %", color: "#2457c5", get: (s) => percent(s.host?.cpu_percent) }],
  },
  {
    id: "memory",
    title: "Memory",
    unit: "%",
    max: 100,
    series: [{ label: "Memory %", color: "#7a3fc4", get: (s) => percent(s.host?.memory?.percent) }],
  },
  {
    id: "latency",
    title: "Request latency",
    unit: "ms",
    series: [
      { label: "p50 ms", color: "#1f7a3d", get: (s) => s.requests?.p50_ms ?? null },
      { label: "p99 ms", color: "#b42318", get: (s) => s.requests?.p99_ms ?? null },
    ],
  },
  {
    id: "queue",
    title: "Job queue",
    unit: "jobs",
    series: [
      { label: "queued", color: "#a15c00", get: (s) => s.jobs?.queued ?? null },
      { label: "running", color: "#2457c5", get: (s) => s.jobs?.running ?? null },
    ],
  },
  {
    id: "cache",
    title: "Cache hit ratio",
    unit: "%",
    max: 100,
    series: [{ label: "hit ratio %", color: "#0f7c8c", get: (s) => ratio(s.cache?.hit_ratio) }],
  },
];

const TILES = [
  ["CPU", (s) => fmt(s.host?.cpu_percent, "%")],
  ["Memory", (s) => fmt(s.host?.memory?.percent, "%")],
  ["p50 latency", (s) => fmt(s.requests?.p50_ms, " ms")],
  ["p99 latency", (s) => fmt(s.requests?.p99_ms, " ms")],
  ["Requests/s", (s) => fmt(s.requests?.per_s, "")],
  ["Jobs queued", (s) => fmt(s.jobs?.queued, "")],
  ["Jobs running", (s) => fmt(s.jobs?.running, "")],
  ["Cache hit ratio", (s) => fmt(ratio(s.cache?.hit_ratio), "%")],
  ["Model tokens/s", (s) => fmt(s.model?.tokens_per_s, "")],
];

function fmt(value, unit) {
  if (value == null || Number.isNaN(Number(value))) return "–";
  const number = Number(value);
  const text = Math.abs(number) >= 100 ? number.toFixed(0) : String(Math.round(number * 10) / 10);
  return text + unit;
}

const status = document.getElementById("status");
const updated = document.getElementById("updated");
const minutesSelect = document.getElementById("minutes");
let minutes = Number(new URLSearchParams(window.location.search).get("minutes")) || 15;
if ([...minutesSelect.options].some((o) => Number(o.value) === minutes)) {
  minutesSelect.value = String(minutes);
} else {
  minutes = Number(minutesSelect.value);
}

let samples = []; // oldest first, one per ts
let lastSeq = null;
let socket = null;
let retries = 0;
let retryTimer = null;

// -- charts ---------------------------------------------------------------------

const plots = CHARTS.map((chart) => {
  const card = document.createElement("figure");
  card.className = "chart";
  card.id = `chart-${chart.id}`;
  card.dataset.points = "0";
  const title = document.createElement("h2");
  title.textContent = chart.title;
  const area = document.createElement("div");
  area.className = "plot";
  const empty = document.createElement("p");
  empty.className = "empty";
  empty.textContent = "No figures in this window yet.";
  card.append(title, empty, area);
  document.getElementById("charts").append(card);
  const range = chart.max
    ? () => [0, chart.max]
    : (_u, _min, max) => [0, max == null || max <= 0 ? 1 : max * 1.15];
  const plot = new uPlot(
    {
      width: Math.max(300, area.clientWidth),
      height: HEIGHT,
      cursor: { drag: { x: false, y: false } },
      legend: { live: false },
      scales: { x: { time: true }, y: { range } },
      axes: [
        { stroke: "#5f6672", grid: { stroke: "#eceef1" } },
        {
          stroke: "#5f6672",
          grid: { stroke: "#eceef1" },
          size: 56,
          values: (_u, ticks) => ticks.map((t) => `${t}${chart.unit === "%" ? "%" : ""}`),
        },
      ],
      series: [
        {},
        ...chart.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: chart.series.length === 1 ? `${s.color}1a` : undefined,
          spanGaps: false,
          points: { show: false },
        })),
      ],
    },
    [[], ...chart.series.map(() => [])],
    area,
  );
  return { chart, card, area, plot };
});

function redraw() {
  const xs = samples.map((s) => Number(s.ts));
  for (const { chart, card, plot } of plots) {
    plot.setData([xs, ...chart.series.map((s) => samples.map((sample) => s.get(sample)))]);
    card.dataset.points = String(xs.length);
    const drawn = chart.series.some((s) => samples.some((sample) => s.get(sample) != null));
    card.querySelector(".empty").hidden = drawn;
    card.dataset.lastTs = xs.length ? String(xs[xs.length - 1]) : "";
  }
}

// Each plot follows its card's width (the grid reflows with the window).
const sizes = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const found = plots.find((p) => p.area === entry.target);
    const width = Math.max(300, Math.floor(entry.contentRect.width));
    // Next frame: resizing inside the observer's callback would be a resize loop.
    if (found && found.plot.width !== width) {
      requestAnimationFrame(() => found.plot.setSize({ width, height: HEIGHT }));
    }
  }
});
for (const { area } of plots) sizes.observe(area);

// -- the latest sample ------------------------------------------------------------

function showLatest(sample) {
  const tiles = document.getElementById("tiles");
  tiles.replaceChildren(
    ...TILES.map(([label, value]) => {
      const tile = document.createElement("div");
      tile.className = "tile";
      const name = document.createElement("div");
      name.className = "label";
      name.textContent = label;
      const figure = document.createElement("div");
      figure.className = "value";
      figure.textContent = value(sample);
      tile.append(name, figure);
      return tile;
    }),
  );
  const when = new Date(Number(sample.ts) * 1000);
  updated.textContent = `last sample ${when.toLocaleTimeString()}`;
  const body = document.querySelector("#endpoints tbody");
  const endpoints = Object.entries(sample.requests?.endpoints || {});
  if (!endpoints.length) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 6;
    cell.className = "live-note";
    cell.textContent = "No requests in the sample's window.";
    row.append(cell);
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(
    ...endpoints.map(([path, f]) => {
      const row = document.createElement("tr");
      for (const text of [path, f.count, f.per_s, f.errors, fmt(f.p50_ms, ""), fmt(f.p99_ms, "")]) {
        const cell = document.createElement("td");
        cell.textContent = text == null ? "–" : String(text);
        row.append(cell);
      }
      return row;
    }),
  );
}

// Adds samples (any order), drops what is older than the window, redraws.
function add(incoming) {
  const known = new Set(samples.map((s) => Number(s.ts)));
  for (const sample of incoming) {
    if (sample && sample.ts != null && !known.has(Number(sample.ts))) {
      samples.push(sample);
      known.add(Number(sample.ts));
    }
  }
  samples.sort((a, b) => a.ts - b.ts);
  // The server's clock, not this machine's: the newest sample is "now".
  const newest = samples.length ? Number(samples[samples.length - 1].ts) : 0;
  samples = samples.filter((s) => s.ts >= newest - minutes * 60);
  redraw();
  if (samples.length) showLatest(samples[samples.length - 1]);
}

async function seed() {
  try {
    const body = await api(`/api/metrics?minutes=${minutes}`);
    samples = [];
    add([...(body.window?.samples || []), ...(body.latest ? [body.latest] : [])]);
  } catch (err) {
    showMessage(describeError(err));
  }
}

// -- the stream -------------------------------------------------------------------

async function connect() {
  clearTimeout(retryTimer);
  setStatus(status, "connecting", "connecting…");
  const config = await consoleConfig();
  const url = await liveSocketUrl("/ws/monitoring/stream", { since: lastSeq });
  if (socket) {
    const old = socket;
    socket = null;
    old.close(1000);
  }
  const ws = new WebSocket(url);
  socket = ws;
  ws.addEventListener("open", () => {
    if (socket !== ws) return;
    retries = 0;
    setStatus(status, "open", "live");
    // Behind API Gateway the first frame delivers the replay; locally it is harmless.
    if (config.door === "aws") ws.send(JSON.stringify({ action: "sync" }));
  });
  ws.addEventListener("message", (event) => {
    if (socket !== ws) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === "sample") {
      if (typeof frame.seq === "number") lastSeq = frame.seq;
      add([frame]);
    } else if (frame.type === "close") {
      // API Gateway's way to close with a code; the socket's own close then says nothing.
      socket = null;
      ws.close(1000);
      onClose(frame.code, frame.reason);
    }
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    socket = null;
    onClose(event.code, event.reason);
  });
}

function onClose(code, reason) {
  const text = describeClose(code, reason);
  if (isFinalClose(code) || retries >= RETRY_MS.length) {
    setStatus(status, "closed", `closed ${text}`);
    showMessage(`The monitoring stream closed with ${text}. Reload the page to try again.`);
    return;
  }
  const wait = RETRY_MS[retries++];
  setStatus(status, "retrying", `closed ${text}; reconnecting in ${wait / 1000} s`);
  retryTimer = setTimeout(connect, wait);
}

minutesSelect.addEventListener("change", async () => {
  minutes = Number(minutesSelect.value);
  const url = new URL(window.location.href);
  url.searchParams.set("minutes", String(minutes));
  window.history.replaceState(null, "", url);
  await seed();
});

await seed();
connect();
