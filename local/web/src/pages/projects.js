// Projects: the key's projects listed by the server, create one, upload a file or
// archive (resumable, with a progress bar), see its file tree, its source, index and
// environment, run an action on one of its files (and apply its result back), search
// it, link it to a git remote and follow its syncs, and see its pull request reviews,
// their webhook and settings.
import { renderActionResult } from "../lib/actionviews.js";
import { api, describeError, downloadFile, isJobAccepted } from "../lib/api.js";
import { badge, byId, clear, formatBytes, h, progressBar, table } from "../lib/dom.js";
import { jobPanel, rememberJob, runEndpoint } from "../lib/jobs.js";
import { fillProjectPicker, listProjects, rememberProject } from "../lib/projects.js";
import { mountShell, showMessage } from "../lib/shell.js";
import { uploadFile } from "../lib/upload.js";

mountShell("projects");

let current = null; // the open project's id
let currentProject = null; // its last GET /api/projects/{id}
let fileInfo = new Map(); // path -> its entry of project.files (kind, reason)
let selectedPath = null; // the file the action bar works on
let indexJob = null; // the index job's panel being followed
const followedIndexJobs = new Set(); // followed once each: a stale state never loops

function fillPicker() {
  return fillProjectPicker(byId("project-pick"));
}
fillPicker();

// -- the key's projects (GET /api/projects, newest first, a page at a time) ------------

let nextProjects = null; // the cursor of the next page; null: no more

function syncBadge(status) {
  return badge(status, status === "succeeded" ? "ok" : status === "failed" ? "bad" : "warn");
}

function gitCell(p) {
  if (!p.git) return h("span", { class: "muted" }, "not linked");
  return h(
    "span",
    { class: "git-summary" },
    h("code", {}, p.git.remote_url),
    ` (${p.git.branch || "main"})`,
    p.git.schedule ? ` · every ${p.git.schedule}` : "",
    " · last sync ",
    p.git.last_sync_status ? syncBadge(p.git.last_sync_status) : "never",
  );
}

function projectRows(items) {
  return table(
    [
      [
        "Name",
        (p) =>
          h(
            "a",
            {
              href: `?project=${p.id}`,
              onclick: (event) => {
                event.preventDefault();
                openProject(p.id);
              },
            },
            p.name,
          ),
      ],
      ["Files", (p) => String(p.files)],
      ["Size", (p) => formatBytes(p.size_bytes)],
      ["Created", (p) => new Date(p.created_at).toLocaleString()],
      ["Updated", (p) => new Date(p.updated_at).toLocaleString()],
      ["Git", gitCell],
    ],
    items,
    { rowProps: (p) => ({ dataset: { projectId: p.id } }) },
  );
}

async function loadProjects({ more = false } = {}) {
  const box = byId("projects-list");
  box.dataset.state = "loading";
  let page;
  try {
    page = await listProjects({ limit: 20, cursor: more ? nextProjects : null });
  } catch (err) {
    box.replaceChildren(h("p", { class: "message error" }, describeError(err)));
    box.dataset.state = "failed";
    return;
  }
  if (!more) box.replaceChildren();
  if (!more && !page.items.length) box.append(h("p", { class: "muted" }, "No projects yet: create one."));
  if (page.items.length) {
    const drawn = projectRows(page.items);
    const body = box.querySelector("tbody");
    if (more && body) body.append(...drawn.querySelectorAll("tbody tr"));
    else box.append(drawn);
  }
  nextProjects = page.next_cursor;
  byId("more-projects").hidden = !nextProjects;
  box.dataset.state = "loaded";
}
loadProjects();
byId("more-projects").addEventListener("click", () => loadProjects({ more: true }));
byId("refresh-projects").addEventListener("click", () => loadProjects());
byId("project-pick").addEventListener("change", (event) => {
  if (event.target.value) byId("project-id").value = event.target.value;
});

byId("create").addEventListener("submit", async (event) => {
  event.preventDefault();
  showMessage("");
  try {
    const project = await api("/api/projects", { method: "POST", body: { name: byId("project-name").value.trim() } });
    rememberProject(project.id, project.name);
    fillPicker();
    loadProjects();
    byId("project-name").value = "";
    await openProject(project.id);
    showMessage(`Project ${project.name} created.`, "ok");
  } catch (err) {
    showMessage(describeError(err));
  }
});

byId("open").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = byId("project-id").value.trim();
  if (id) openProject(id);
});

let openSeq = 0; // a slower, older answer must not draw over a newer one

// Open (or reload) a project: its facts, source, index, environment and tree. Reloading
// the open project keeps the selected file, the action's result and the search hits.
async function openProject(id) {
  showMessage("");
  const seq = ++openSeq;
  let project;
  try {
    project = await api(`/api/projects/${encodeURIComponent(id)}`);
  } catch (err) {
    if (seq === openSeq) showMessage(describeError(err));
    return;
  }
  if (seq !== openSeq) return;
  const same = project.id === current;
  if (!same) leaveProject();
  current = project.id;
  currentProject = project;
  rememberProject(project.id, project.name);
  const url = new URL(window.location.href);
  url.searchParams.set("project", project.id);
  window.history.replaceState(null, "", url);
  byId("project").hidden = false;
  byId("project-title").textContent = project.name;
  drawProject(project);
  if (!same) {
    loadGit();
    loadReviews();
  }
}

// What belongs to the project being left: its index job panel, selection, results.
function leaveProject() {
  if (indexJob) indexJob.close();
  indexJob = null;
  clear(byId("index-jobs"));
  byId("reindex").disabled = false;
  byId("reindex-state").textContent = "";
  selectedPath = null;
  byId("file-actions").hidden = true;
  clear(byId("file-jobs"));
  clear(byId("file-result"));
  clear(byId("search-results"));
  clear(byId("reviews-list"));
  clear(byId("webhook-result"));
  clear(byId("review-settings-state"));
  byId("review-settings").reset(); // no GET for them: the defaults until saved
}

function drawProject(project) {
  const files = project.files || [];
  const unread = files.filter((f) => f.kind && f.kind !== "text").length;
  byId("project-facts").replaceChildren(
    h("code", {}, project.id),
    ` · version ${project.version} · ${files.length} files${unread ? ` (${unread} not read as code)` : ""} · ${formatBytes(project.size_bytes)} · created ${new Date(project.created_at).toLocaleString()}`,
  );
  drawSource(project);
  drawIndex(project);
  drawEnvironment(project);
  fileInfo = new Map(files.map((f) => [f.path, f]));
  const tree = clear(byId("tree"));
  if (selectedPath && !fileInfo.has(selectedPath)) closeFileActions();
  if (!files.length) {
    tree.append(h("p", { class: "muted" }, "No files yet: upload some."));
    return;
  }
  tree.append(h("ul", {}, ((project.tree && project.tree.children) || []).map(treeNode)));
  if (selectedPath) selectFile(selectedPath, { keepResult: true });
}

// -- source, index, environment -----------------------------------------------------

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

// A revision as its first 12 characters (the whole one in the title and data-revision).
function revision(rev) {
  if (!rev) return h("span", { class: "muted" }, "—");
  return h("code", { class: "rev", title: rev, dataset: { revision: rev } }, rev.length > 12 ? `${rev.slice(0, 12)}…` : rev);
}

// <dl> rows [[label, value, key]]; each <dd> carries data-fact=key for the tests.
function facts(list, rows) {
  clear(list);
  for (const [label, value, key] of rows) {
    if (value === null || value === undefined || value === false) continue;
    list.append(h("dt", {}, label), h("dd", { dataset: { fact: key } }, value));
  }
  return list;
}

const SOURCE_KINDS = { upload: "upload", git: "git", files: "files (sent in a request body)" };

function drawSource(project) {
  const list = byId("source-facts");
  const source = project.source;
  byId("source-panel").dataset.kind = list.dataset.kind = (source && source.kind) || "none";
  if (!source) {
    facts(list, [["Kind", h("span", { class: "muted" }, "not reported by this server"), "kind"]]);
    return;
  }
  if (!source.kind) {
    facts(list, [["Kind", h("span", { class: "muted" }, "no files yet"), "kind"], ["Files changed", when(source.changed_at), "changed"]]);
    return;
  }
  const ref =
    source.kind === "git"
      ? ["Branch", source.ref ? h("code", {}, source.ref) : null, "ref"]
      : source.kind === "upload"
        ? ["File", source.ref ? h("code", {}, source.ref) : null, "ref"]
        : ["Ref", null, "ref"];
  const label = source.kind === "git" ? "Commit" : source.kind === "upload" ? "SHA-256" : "Digest";
  facts(list, [
    ["Kind", SOURCE_KINDS[source.kind] || source.kind, "kind"],
    [label, revision(source.revision), "revision"],
    ref,
    ["Files changed", when(source.changed_at), "changed"],
  ]);
}

const INDEX_BADGE = { none: "", queued: "warn", running: "warn", ready: "ok", failed: "bad" };

function drawIndex(project) {
  const list = byId("index-facts");
  const index = project.index;
  const error = byId("index-error");
  error.hidden = true;
  byId("index-panel").dataset.state = list.dataset.state = (index && index.state) || "unknown";
  if (!index) {
    facts(list, [["State", h("span", { class: "muted" }, "not reported by this server"), "state"]]);
    return;
  }
  const filesAt = project.source && project.source.revision;
  let indexed = revision(index.revision);
  if (index.revision && filesAt) {
    indexed = h(
      "span",
      {},
      indexed,
      index.revision === filesAt ? h("span", { class: "muted" }, " (the files' revision)") : h("span", { class: "muted" }, " (the files are at ", revision(filesAt), ")"),
    );
  } else if (!index.revision) {
    indexed = h("span", { class: "muted" }, "never indexed");
  }
  facts(list, [
    ["State", badge(index.state || "none", INDEX_BADGE[index.state] ?? ""), "state"],
    ["Indexed", indexed, "revision"],
    ["Pending", index.pending_revision ? h("span", {}, "indexing ", revision(index.pending_revision)) : null, "pending"],
    ["Chunks", `${index.chunks ?? 0} chunks from ${index.files ?? 0} files`, "chunks"],
    ["Embedder", index.embedder ? h("code", {}, index.embedder) : null, "embedder"],
    ["Indexed at", index.indexed_at ? when(index.indexed_at) : null, "indexed-at"],
    ["Job", index.job_id ? h("code", {}, index.job_id) : null, "job"],
  ]);
  if (index.last_error) {
    error.textContent = `${index.last_error.code || "error"}: ${index.last_error.message || ""}`;
    error.hidden = false;
  }
  // A job at work on the index: its progress is followed live, here.
  if (index.job_id && (index.state === "queued" || index.state === "running")) followIndexJob(index.job_id);
}

const ENV_BADGE = { none: "", building: "warn", ready: "ok", failed: "bad" };

function drawEnvironment(project) {
  const list = byId("env-facts");
  const env = project.environment;
  const error = byId("env-error");
  error.hidden = true;
  byId("env-panel").dataset.state = list.dataset.state = env ? env.state || "none" : "environment" in project ? "none" : "unknown";
  if (!("environment" in project)) {
    facts(list, [["State", h("span", { class: "muted" }, "not reported by this server"), "state"]]);
    return;
  }
  if (!env) {
    facts(list, [["State", h("span", { class: "muted" }, "none built (no manifests, or not yet)"), "state"]]);
    return;
  }
  const manifests = env.manifests || [];
  facts(list, [
    ["State", badge(env.state || "none", ENV_BADGE[env.state] ?? ""), "state"],
    ["Kind", env.kind ? h("code", {}, env.kind) : null, "kind"],
    ["Manifests", manifests.length ? h("ul", {}, manifests.map((m) => h("li", {}, h("code", {}, m)))) : h("span", { class: "muted" }, "none found"), "manifests"],
    ["Size", env.size_bytes != null ? formatBytes(env.size_bytes) : null, "size"],
    ["Hash", env.hash ? revision(env.hash) : null, "hash"],
    ["Built", env.built_at ? when(env.built_at) : null, "built"],
  ]);
  if (env.error) {
    error.textContent = env.error;
    error.hidden = false;
  }
}

// The index job's panel (one at a time); once it ends the project is read again.
function followIndexJob(jobId) {
  if (followedIndexJobs.has(jobId)) return;
  followedIndexJobs.add(jobId);
  if (indexJob) indexJob.close();
  clear(byId("index-jobs"));
  byId("reindex").disabled = true;
  const projectId = current;
  indexJob = jobPanel(byId("index-jobs"), jobId, {
    kind: "index",
    onFinished: (job) => {
      if (current !== projectId) return;
      byId("reindex").disabled = false;
      byId("reindex-state").textContent = job.status === "succeeded" ? "Indexed." : `The index job ${job.status}.`;
      openProject(projectId);
    },
  });
}

byId("reindex").addEventListener("click", async () => {
  if (!current) return;
  showMessage("");
  const state = byId("reindex-state");
  const button = byId("reindex");
  button.disabled = true;
  state.textContent = "asking…";
  try {
    // No files in the body: the stored files are indexed, as a job (202).
    const accepted = await api(`/api/projects/${current}/index`, { method: "POST", body: {} });
    if (!isJobAccepted(accepted)) {
      // indexed there and then (an older server's answer)
      state.textContent = `Indexed: ${accepted.chunks_total ?? "?"} chunks.`;
      button.disabled = false;
      await openProject(current);
      return;
    }
    state.textContent = "";
    rememberJob(accepted.job_id, "index", byId("project-title").textContent);
    const project = currentProject;
    // Drawn as queued at once; the job's end reads the project again.
    drawIndex({
      ...project,
      index: { ...(project.index || {}), state: "queued", job_id: accepted.job_id, pending_revision: (project.source && project.source.revision) || null },
    });
    followIndexJob(accepted.job_id);
  } catch (err) {
    state.textContent = "";
    button.disabled = false;
    showMessage(describeError(err));
  }
});

// -- files: the tree, a file's kind, the action bar --------------------------------

function kindNote(file) {
  const reason = file.reason || "not read as code";
  return reason.toLowerCase().startsWith(file.kind) ? reason : `${file.kind}: ${reason}`;
}

function download(path) {
  const name = path.split("/").pop();
  downloadFile(`/api/projects/${current}/download?path=${encodeURIComponent(path)}`, name).catch((err) => showMessage(describeError(err)));
}

function treeNode(node) {
  if (node.type === "dir") {
    return h(
      "li",
      { class: "dir", dataset: { path: node.path } },
      h("details", { open: true }, h("summary", {}, `${node.name}/`, h("span", { class: "size" }, formatBytes(node.size))), h("ul", {}, (node.children || []).map(treeNode))),
    );
  }
  const file = fileInfo.get(node.path) || { kind: "text" };
  const kind = file.kind || "text";
  return h(
    "li",
    { class: `file kind-${kind}`, dataset: { path: node.path, kind } },
    h("button", { type: "button", class: "link file-name", title: `Select ${node.path}`, onclick: () => selectFile(node.path) }, node.name),
    h("span", { class: "size" }, formatBytes(node.size)),
    kind !== "text" ? h("span", { class: "badge warn file-kind", title: file.reason || "" }, kindNote(file)) : null,
    h(
      "a",
      {
        href: "#",
        class: "download",
        title: `Download ${node.path}`,
        "aria-label": `Download ${node.path}`,
        onclick: (event) => {
          event.preventDefault();
          download(node.path);
        },
      },
      "⤓",
    ),
  );
}

function selectFile(path, { keepResult = false } = {}) {
  if (!keepResult && path !== selectedPath) {
    clear(byId("file-jobs"));
    clear(byId("file-result"));
  }
  selectedPath = path;
  for (const li of byId("tree").querySelectorAll("li.file")) li.classList.toggle("selected", li.dataset.path === path);
  const file = fileInfo.get(path) || { kind: "text" };
  const readable = !file.kind || file.kind === "text";
  byId("file-actions").hidden = false;
  byId("file-actions").dataset.path = path;
  byId("file-action-path").textContent = path;
  byId("file-action-note").textContent = readable
    ? `${formatBytes(file.size)}${file.version != null ? ` · version ${file.version}` : ""}`
    : `${kindNote(file)}: the actions read text files only.`;
  byId("file-run").disabled = !readable;
  if (!keepResult) byId("file-actions").scrollIntoView({ block: "nearest" });
}

function closeFileActions() {
  selectedPath = null;
  byId("file-actions").hidden = true;
  for (const li of byId("tree").querySelectorAll("li.file.selected")) li.classList.remove("selected");
  clear(byId("file-jobs"));
  clear(byId("file-result"));
}

function refreshActionFields() {
  const explain = byId("file-action").value === "explain";
  byId("file-instructions-label").textContent = explain ? "Question (optional)" : "Instructions (optional)";
  byId("file-instructions").placeholder = explain ? "What does this do?" : "what to look at, what to change";
}
byId("file-action").addEventListener("change", refreshActionFields);
refreshActionFields();
byId("file-close").addEventListener("click", closeFileActions);
byId("file-download").addEventListener("click", () => selectedPath && download(selectedPath));

byId("file-action-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current || !selectedPath) return;
  showMessage("");
  const action = byId("file-action").value;
  const text = byId("file-instructions").value.trim();
  // The stored file by project and path, as a job (explain asks a question instead).
  const body = { project_id: current, path: selectedPath, options: { async: true } };
  if (text) body[action === "explain" ? "question" : "instructions"] = text;
  const out = clear(byId("file-result"));
  clear(byId("file-jobs"));
  const run = byId("file-run");
  run.disabled = true;
  try {
    await runEndpoint(`/api/${action}`, body, {
      jobArea: byId("file-jobs"),
      kind: action,
      label: selectedPath,
      // An applied change moves the stored files (or the branch): read the project again.
      onResult: (answer, job) => renderActionResult(out, action, answer, job, { onApplied: () => current && openProject(current) }),
    });
  } catch (err) {
    showMessage(describeError(err));
  } finally {
    run.disabled = false;
  }
});

// -- search --------------------------------------------------------------------------

function lines(hit) {
  return hit.end_line && hit.end_line !== hit.start_line ? `${hit.start_line}-${hit.end_line}` : String(hit.start_line);
}

byId("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  showMessage("");
  const box = byId("search-results");
  box.dataset.state = "loading";
  const body = { query: byId("search-query").value.trim(), k: Math.min(50, Math.max(1, Number(byId("search-k").value) || 5)) };
  let found;
  try {
    found = await api(`/api/projects/${current}/search`, { method: "POST", body });
  } catch (err) {
    box.replaceChildren(h("p", { class: "message error" }, describeError(err)));
    box.dataset.state = "failed";
    return;
  }
  const hits = found.hits || [];
  box.replaceChildren(
    h(
      "p",
      { class: "muted search-meta" },
      `${hits.length} hit(s)`,
      " · from revision ",
      found.revision ? revision(found.revision) : "(not reported)",
      found.embedder ? h("span", {}, " · embedder ", h("code", {}, found.embedder)) : null,
    ),
    hits.length
      ? h(
          "ol",
          { class: "search-hits" },
          hits.map((hit) =>
            h(
              "li",
              { class: "search-hit", dataset: { path: hit.path, startLine: String(hit.start_line), endLine: String(hit.end_line) } },
              h(
                "div",
                { class: "hit-head" },
                h("button", { type: "button", class: "link hit-where", title: `Select ${hit.path}`, onclick: () => fileInfo.has(hit.path) && selectFile(hit.path) }, `${hit.path}:${lines(hit)}`),
                hit.symbol ? h("code", { class: "hit-symbol" }, hit.symbol) : null,
                typeof hit.score === "number" ? h("span", { class: "score" }, `score ${hit.score.toFixed(3)}`) : null,
              ),
              h("pre", {}, hit.text || ""),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No hits: is the project indexed?"),
  );
  box.dataset.state = "loaded";
});

// -- upload ----------------------------------------------------------------------

const bar = progressBar();
byId("upload-progress").append(bar.element);
bar.element.hidden = true;
let controller = null;

byId("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = byId("upload-file").files[0];
  if (!file || !current) return;
  showMessage("");
  controller = new AbortController();
  byId("upload-start").disabled = true;
  byId("upload-pause").disabled = false;
  bar.element.hidden = false;
  const chunkSize = Math.max(1, Number(byId("chunk-kb").value) || 4096) * 1024;
  const state = byId("upload-state");
  try {
    const done = await uploadFile(current, file, {
      chunkSize,
      signal: controller.signal,
      onProgress: (sent, total) => {
        bar.set(total ? (100 * sent) / total : 100, `${formatBytes(sent)} of ${formatBytes(total)}`);
        state.textContent = "";
      },
    });
    bar.element.dataset.state = done.state;
    if (done.state === "verifying" && done.job_id) {
      // S3: a job checks the SHA-256 and unpacks it; the tree is drawn once it is done.
      bar.set(100, `${formatBytes(file.size)} sent · verifying`);
      rememberJob(done.job_id, "upload", file.name);
      jobPanel(byId("upload-progress"), done.job_id, { kind: "upload", onFinished: () => openProject(current) });
      return;
    }
    bar.set(100, `${formatBytes(file.size)} · ${done.files ?? 1} file(s) stored, version ${done.version ?? "?"}`);
    state.textContent = done.state === "complete" ? "" : `The upload is ${done.state}.`;
    await openProject(current);
    loadProjects();
  } catch (err) {
    if (err.name === "AbortError") state.textContent = "Paused: upload the same file again to resume.";
    else showMessage(describeError(err));
  } finally {
    byId("upload-start").disabled = false;
    byId("upload-pause").disabled = true;
  }
});

byId("upload-pause").addEventListener("click", () => controller && controller.abort());

// -- git -------------------------------------------------------------------------

async function loadGit() {
  const box = clear(byId("git-status"));
  let status;
  try {
    status = await api(`/api/projects/${current}/git/status`);
  } catch (err) {
    box.append(h("p", { class: "message error" }, describeError(err)));
    return;
  }
  const link = status.link;
  if (!link.remote_url) {
    box.append(h("p", { class: "muted" }, "Not linked to a git remote."));
    return;
  }
  byId("git-remote").value = link.remote_url;
  byId("git-branch").value = link.branch || "main";
  byId("git-schedule").value = link.schedule || "";
  const last = status.runs[0];
  box.append(
    h(
      "p",
      { class: "git-link" },
      "Linked to ",
      h("code", {}, link.remote_url),
      ` (${link.branch})`,
      link.schedule ? ` · syncs every ${link.schedule}, next ${link.next_sync_at ? new Date(link.next_sync_at).toLocaleString() : "soon"}` : " · no schedule",
      " · workspace ",
      status.head ? h("code", {}, status.head.slice(0, 12)) : "not cloned yet",
      " · last sync ",
      last ? badge(last.status, last.status === "succeeded" ? "ok" : last.status === "failed" ? "bad" : "warn") : "never",
    ),
  );
  if (status.runs.length) {
    box.append(
      table(
        [
          ["When", (r) => new Date(r.created_at).toLocaleString()],
          ["Trigger", (r) => r.trigger],
          ["Status", (r) => badge(r.status, r.status === "succeeded" ? "ok" : r.status === "failed" ? "bad" : "warn")],
          ["Message", (r) => r.message || ""],
        ],
        status.runs,
      ),
    );
  }
  if (status.proposals && status.proposals.length) {
    box.append(h("p", { class: "muted" }, `${status.proposals.length} merge proposal(s): see GET /api/projects/{id}/git/status.`));
  }
}

byId("git-link").addEventListener("submit", async (event) => {
  event.preventDefault();
  showMessage("");
  const body = { remote_url: byId("git-remote").value.trim(), branch: byId("git-branch").value.trim() || "main" };
  if (byId("git-schedule").value.trim()) body.schedule = byId("git-schedule").value.trim();
  try {
    await api(`/api/projects/${current}/git/link`, { method: "POST", body });
    showMessage("Linked.", "ok");
    loadGit();
    loadProjects();
  } catch (err) {
    showMessage(describeError(err));
  }
});

byId("git-sync").addEventListener("click", async () => {
  showMessage("");
  try {
    const accepted = await api(`/api/projects/${current}/git/sync`, { method: "POST", body: { push: true } });
    rememberJob(accepted.job_id, "git_sync", byId("project-title").textContent);
    jobPanel(byId("git-jobs"), accepted.job_id, {
      kind: "git_sync",
      onFinished: () => {
        loadGit();
        loadProjects();
        openProject(current); // its source and the index job the sync queued
      },
    });
  } catch (err) {
    showMessage(describeError(err));
  }
});

// -- pull request reviews, the webhook that asks for them, their settings -----------

const COUNT_ORDER = ["critical", "high", "medium", "low", "info"];
const COUNT_KIND = { critical: "bad", high: "bad", medium: "warn" };

function countsView(counts) {
  const present = COUNT_ORDER.filter((s) => counts && counts[s]);
  if (!present.length) return h("span", { class: "muted" }, "no findings");
  return present.map((s) => h("span", { class: `badge sev-${s} ${COUNT_KIND[s] || ""} review-count`, dataset: { severity: s, count: String(counts[s]) } }, `${counts[s]} ${s}`));
}

function reviewRows(items) {
  return table(
    [
      [
        "Pull request",
        (r) => {
          const pr = r.pull_request || {};
          const label = `#${pr.number}${pr.title ? ` ${pr.title}` : ""}`;
          return pr.url ? h("a", { href: pr.url, target: "_blank", rel: "noopener", class: "review-pr" }, label) : h("span", { class: "review-pr" }, label);
        },
      ],
      ["Verdict", (r) => badge(r.verdict, r.verdict === "pass" ? "ok" : "bad")],
      ["Findings", (r) => countsView(r.counts)],
      ["Fails on", (r) => r.fail_on || ""],
      ["When", (r) => when(r.created_at)],
      ["Report", (r) => (r.report_id ? h("a", { href: `/reports.html?report=${encodeURIComponent(r.report_id)}` }, "report") : "")],
    ],
    items,
    { rowProps: (r) => ({ class: "review", dataset: { reportId: r.report_id || "", verdict: r.verdict } }) },
  );
}

async function loadReviews() {
  const box = byId("reviews-list");
  const projectId = current;
  box.dataset.state = "loading";
  let page;
  try {
    page = await api(`/api/projects/${projectId}/reviews`);
  } catch (err) {
    if (current !== projectId) return;
    box.replaceChildren(h("p", { class: "message error" }, describeError(err)));
    box.dataset.state = "failed";
    return;
  }
  if (current !== projectId) return;
  const items = page.items || [];
  box.replaceChildren(items.length ? reviewRows(items) : h("p", { class: "muted no-reviews" }, "No reviews yet"));
  box.dataset.state = "loaded";
}

byId("refresh-reviews").addEventListener("click", () => current && loadReviews());

byId("webhook").addEventListener("click", async () => {
  if (!current) return;
  showMessage("");
  const box = clear(byId("webhook-result"));
  const button = byId("webhook");
  button.disabled = true;
  let made;
  try {
    made = await api(`/api/projects/${current}/webhook`, { method: "POST" });
  } catch (err) {
    showMessage(describeError(err));
    return;
  } finally {
    button.disabled = false;
  }
  const urls = made.urls || {};
  box.append(
    h("p", { class: "message info webhook-note" }, "The secret is shown only now: copy it into the host's webhook settings. Asking again makes a new one, and the old one stops working."),
    h(
      "dl",
      { class: "facts-list" },
      h("dt", {}, "Secret"),
      h("dd", { dataset: { fact: "secret" } }, h("code", { class: "webhook-secret" }, made.secret)),
      Object.entries(urls).map(([provider, url]) => [h("dt", {}, provider), h("dd", { dataset: { fact: provider } }, h("code", { class: "webhook-url", dataset: { provider } }, url))]),
    ),
  );
});

byId("review-settings").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  showMessage("");
  const state = clear(byId("review-settings-state"));
  const checks = [...byId("review-settings").querySelectorAll("input[name=review-check]:checked")].map((box) => box.value);
  if (!checks.length) {
    showMessage("Choose at least one check.");
    return;
  }
  let saved;
  try {
    saved = await api(`/api/projects/${current}/review/settings`, { method: "PUT", body: { checks, fail_on: byId("review-fail-on").value } });
  } catch (err) {
    showMessage(describeError(err));
    return;
  }
  for (const box of byId("review-settings").querySelectorAll("input[name=review-check]")) box.checked = saved.checks.includes(box.value);
  byId("review-fail-on").value = saved.fail_on;
  state.dataset.checks = saved.checks.join(",");
  state.dataset.failOn = saved.fail_on;
  state.append("Saved: ", h("code", {}, saved.checks.join(" + ")), `, failing at ${saved.fail_on} or above.`);
});

const wanted = new URLSearchParams(window.location.search).get("project");
if (wanted) openProject(wanted);
