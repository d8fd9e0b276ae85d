// The key's jobs from the server (GET /api/jobs: newest first, filtered by status, a
// page at a time), each with its status, a live progress bar and Cancel; a finished
// one links to its result on the Actions page (or Reports/Projects). A job id from
// elsewhere opens by hand; if the list cannot be read, the jobs this tab started show.
import { describeError } from "../lib/api.js";
import { byId, h } from "../lib/dom.js";
import { FINISHED, forgetJob, jobPanel, listJobs, rememberJob, rememberedJobs } from "../lib/jobs.js";
import { mountShell, showMessage } from "../lib/shell.js";

mountShell("jobs");

const list = byId("jobs");
const more = byId("more-jobs");
const panels = new Map();
let cursor = null; // the next page's cursor; null: no more
let generation = 0; // a newer load makes an older one's answer stale

// Where a finished job's result is drawn.
function resultLink(job) {
  const actions = ["explain", "fix", "analyze", "test", "optimize", "migrate", "generate"];
  if (actions.includes(job.kind)) return `/actions.html?job=${job.id}`;
  if (["security_scan", "figma", "kubernetes"].includes(job.kind)) return `/reports.html?job=${job.id}`;
  if (job.project_id) return `/projects.html?project=${job.project_id}`;
  return null;
}

// The label this tab gave a job it started (a file name, a spec), if any.
function labelOf(id) {
  const entry = rememberedJobs().find((job) => job.id === id);
  return entry ? entry.label : "";
}

function show(entry, { first = false } = {}) {
  if (panels.has(entry.id)) return;
  const holder = h("div", { class: "job-entry" });
  if (first) list.prepend(holder);
  else list.append(holder);
  const panel = jobPanel(holder, entry.id, {
    kind: entry.kind,
    onFinished: (job) => {
      const href = resultLink(job);
      if (href) panel.element.append(h("p", {}, h("a", { href, class: "open-result" }, "Open the result")));
    },
  });
  const label = entry.label || labelOf(entry.id);
  if (label) panel.element.querySelector(".job-head").append(h("span", { class: "muted" }, label));
  panels.set(entry.id, panel);
  byId("no-jobs").hidden = true;
}

function closeAll() {
  for (const panel of panels.values()) panel.close();
  panels.clear();
  list.replaceChildren();
}

// The statuses ticked in the filter (none: every status), kept in the address.
function chosenStatuses() {
  return [...document.querySelectorAll("#status-filter input[name=status]:checked")].map((box) => box.value);
}

function setStatusesInUrl(statuses) {
  const url = new URL(window.location.href);
  if (statuses.length) url.searchParams.set("status", statuses.join(","));
  else url.searchParams.delete("status");
  window.history.replaceState(null, "", url);
}

async function load({ next = false } = {}) {
  const mine = ++generation;
  const statuses = chosenStatuses();
  list.dataset.state = "loading";
  more.disabled = true;
  let page;
  try {
    page = await listJobs({ statuses, cursor: next ? cursor : null });
  } catch (err) {
    if (mine !== generation) return;
    showMessage(`${describeError(err)} Showing the jobs this tab started.`);
    if (!next) {
      closeAll();
      const jobs = rememberedJobs();
      for (const entry of jobs) show(entry);
      byId("no-jobs").hidden = jobs.length > 0;
    }
    list.dataset.state = "failed";
    more.hidden = true;
    return;
  }
  if (mine !== generation) return;
  showMessage("");
  if (!next) closeAll();
  for (const job of page.items) show({ id: job.id, kind: job.kind });
  cursor = page.next_cursor;
  more.hidden = !cursor;
  more.disabled = false;
  byId("no-jobs").hidden = panels.size > 0;
  list.dataset.state = "loaded";
}

// ?status=failed,cancelled ticks those boxes (a reload keeps the filter).
const wanted = (new URLSearchParams(window.location.search).get("status") || "").split(",");
for (const box of document.querySelectorAll("#status-filter input[name=status]")) box.checked = wanted.includes(box.value);
for (const box of document.querySelectorAll("#status-filter input[name=status]")) {
  box.addEventListener("change", () => {
    setStatusesInUrl(chosenStatuses());
    load();
  });
}
byId("job-filter").addEventListener("submit", (event) => event.preventDefault());
byId("refresh-jobs").addEventListener("click", () => load());
more.addEventListener("click", () => load({ next: true }));
load();

byId("open-job").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = byId("job-id").value.trim();
  if (!id) return;
  rememberJob(id, "", "");
  show({ id, kind: "" }, { first: true });
  byId("job-id").value = "";
});

// Finished jobs leave the view (and this tab's memory); the server keeps them.
byId("clear-finished").addEventListener("click", () => {
  for (const [id, panel] of panels) {
    if (FINISHED.includes(panel.element.dataset.status)) {
      forgetJob(id);
      panel.close();
      panel.element.parentElement.remove();
      panels.delete(id);
    }
  }
  byId("no-jobs").hidden = panels.size > 0;
});
