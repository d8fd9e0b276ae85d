// Jobs as a page sees them: the key's jobs (GET /api/jobs, newest first, paged), the
// ones this tab started (session storage, for their labels), a live view
// over /ws/jobs/{id} (numbered events; a dropped socket reconnects with ?since=) and
// a panel with the status, a progress bar, the streamed model output and Cancel.
import { api, ApiError, describeError, isJobAccepted } from "./api.js";
import { badge, h, progressBar } from "./dom.js";
import { consoleConfig, liveSocketUrl } from "./live.js";

const LIST = "orchestrator.jobs";
export const FINISHED = ["succeeded", "failed", "cancelled"];

export function rememberedJobs() {
  try {
    return JSON.parse(sessionStorage.getItem(LIST) || "[]");
  } catch {
    return [];
  }
}

export function rememberJob(id, kind, label = "") {
  const jobs = rememberedJobs().filter((job) => job.id !== id);
  jobs.unshift({ id, kind, label, started: new Date().toISOString() });
  sessionStorage.setItem(LIST, JSON.stringify(jobs.slice(0, 100)));
}

// One page of the key's jobs: {items, next_cursor}; statuses filters (empty: all).
export function listJobs({ statuses = [], kind = "", limit = 20, cursor = null } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (statuses.length) query.set("status", statuses.join(","));
  if (kind) query.set("kind", kind);
  if (cursor) query.set("cursor", cursor);
  return api(`/api/jobs?${query}`);
}

export function forgetJob(id) {
  sessionStorage.setItem(LIST, JSON.stringify(rememberedJobs().filter((job) => job.id !== id)));
}

const CLOSE_REASONS = {
  4401: "The API key was refused (missing, unknown or revoked). Sign in again.",
  4404: "No such job (or it belongs to another key).",
  4429: "Too many requests for this key: the job's live view was refused.",
  4503: "Live job updates are not available here.",
};

// Follow a job's events: handlers.onEvent(event) for each numbered event,
// handlers.onState(job) for each snapshot, handlers.onClose(reason|null) at the end.
// Returns {close()}. Behind API Gateway (no live push there) it asks for what is new
// with a sync frame every 2 s.
export function followJob(id, { onEvent = () => {}, onState = () => {}, onClose = () => {} } = {}) {
  let lastSeq = null;
  let socket = null;
  let stopped = false;
  let retries = 0;
  let poll = null;
  const end = (reason) => {
    stopped = true;
    clearInterval(poll);
    onClose(reason);
  };
  const connect = async () => {
    const config = await consoleConfig();
    if (stopped) return;
    socket = new WebSocket(await liveSocketUrl(`/ws/jobs/${id}`, { since: lastSeq }));
    if (config.door === "aws") {
      const sync = () => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify(lastSeq === null ? { action: "sync" } : { action: "sync", since: lastSeq }));
      socket.onopen = sync;
      clearInterval(poll);
      poll = setInterval(sync, 2000);
    }
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      retries = 0;
      if (event.type === "close") {
        // API Gateway's way of closing with a code (README "WebSockets")
        end(event.code === 1000 ? null : CLOSE_REASONS[event.code] || `The job's live view closed (${event.code}).`);
        socket.close();
        return;
      }
      if (event.type === "state") {
        onState(event.job);
        return;
      }
      if (typeof event.seq === "number") {
        if (lastSeq !== null && event.seq <= lastSeq) return; // already seen
        lastSeq = event.seq;
      }
      onEvent(event);
    };
    socket.onclose = (close) => {
      if (stopped) return;
      if (close.code === 1000) {
        end(null);
      } else if (CLOSE_REASONS[close.code] || close.code === 4400 || retries >= 5) {
        end(CLOSE_REASONS[close.code] || `The job's live view closed (${close.code} ${close.reason || ""}).`);
      } else {
        // Dropped (1001 server stopping or slow client, 1006 network): resume after lastSeq.
        retries += 1;
        setTimeout(connect, 500 * retries);
      }
    };
  };
  connect();
  return {
    close() {
      stopped = true;
      clearInterval(poll);
      if (socket) socket.close();
    },
  };
}

function statusKind(status) {
  if (status === "succeeded") return "ok";
  if (status === "failed" || status === "cancelled") return "bad";
  return "warn";
}

// A job's panel in `parent`: fetched once over HTTP (so a reload shows where it
// stands), then followed live. onFinished(job) runs once when it ends.
export function jobPanel(parent, id, { kind = "", onFinished = () => {} } = {}) {
  const status = h("span", { class: "job-status" }, badge("loading", "warn"));
  const progress = progressBar();
  const cancel = h("button", { type: "button", class: "secondary cancel" }, "Cancel");
  const output = h("pre", { class: "job-output", hidden: true });
  const note = h("p", { class: "job-note muted" });
  const panel = h(
    "section",
    { class: "job", dataset: { jobId: id } },
    h("div", { class: "job-head" }, h("strong", { class: "job-kind" }, `Job ${kind ? `${kind} ` : ""}`), h("code", {}, id), status, cancel),
    progress.element,
    note,
    output,
  );
  parent.append(panel);
  let finished = false;
  let follower = null;
  let current = null;

  const showStatus = (value, extra = "") => {
    status.replaceChildren(badge(value, statusKind(value)));
    panel.dataset.status = value;
    if (extra) note.textContent = extra;
    cancel.disabled = FINISHED.includes(value);
  };
  const showJob = (job) => {
    current = job;
    if (!kind && job.kind) panel.querySelector(".job-kind").textContent = `Job ${job.kind} `;
    showStatus(job.cancel_requested && job.status === "running" ? "cancelling" : job.status);
    progress.set(job.progress.percent, [job.progress.step, job.progress.message].filter(Boolean).join(": "));
    if (job.status === "failed" && job.error) note.textContent = `${job.error.code || "failed"}: ${job.error.message || ""}`;
    if (FINISHED.includes(job.status) && !finished) {
      finished = true;
      if (job.status === "succeeded") progress.set(100, job.progress.step || "done");
      onFinished(job);
    }
  };
  const onEvent = (event) => {
    if (event.type === "progress") {
      progress.set(event.percent, [event.step, event.message].filter(Boolean).join(": "));
    } else if (event.type === "token") {
      output.hidden = false;
      output.textContent += event.token;
      output.scrollTop = output.scrollHeight;
    } else if (event.type === "status") {
      showStatus(event.status);
      if (FINISHED.includes(event.status)) {
        // The final state follows; if it does not (a frame too big for the gateway), ask.
        setTimeout(() => {
          if (!finished) api(`/api/jobs/${id}`).then(showJob, () => {});
        }, 2000);
      }
    } else if (event.type === "cancel_requested") {
      showStatus("cancelling");
    }
  };

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      showJob(await api(`/api/jobs/${id}`, { method: "DELETE" }));
    } catch (err) {
      note.textContent = describeError(err);
      cancel.disabled = false;
    }
  });

  (async () => {
    try {
      showJob(await api(`/api/jobs/${id}`));
    } catch (err) {
      showStatus("unknown", describeError(err));
      if (err instanceof ApiError && err.status === 404) return;
    }
    if (finished) return; // nothing more will happen: no socket for it
    follower = followJob(id, {
      onEvent,
      onState: showJob,
      onClose: (reason) => {
        if (reason) note.textContent = reason;
      },
    });
  })();

  return {
    element: panel,
    get job() {
      return current;
    },
    close() {
      if (follower) follower.close();
    },
  };
}

// POST an endpoint; a 202 becomes a job panel (remembered for the Jobs page) whose
// result goes to onResult like a direct answer. Returns the answer or the 202 body.
export async function runEndpoint(path, body, { jobArea, kind, label = "", onResult, onJob = () => {} }) {
  const answer = await api(path, { method: "POST", body });
  if (!isJobAccepted(answer)) {
    onResult(answer, null);
    return answer;
  }
  rememberJob(answer.job_id, kind, label);
  onJob(answer.job_id);
  jobPanel(jobArea, answer.job_id, {
    kind,
    onFinished: (job) => {
      if (job.status === "succeeded" && job.result) onResult(job.result, job);
    },
  });
  return answer;
}
