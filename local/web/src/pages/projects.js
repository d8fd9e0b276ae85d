// Projects: the key's projects listed by the server, create one, upload a file or
// archive (resumable, with a progress bar), see its file tree, link it to a git
// remote and follow its syncs.
import { api, describeError, downloadFile } from "../lib/api.js";
import { badge, byId, clear, formatBytes, h, progressBar, table } from "../lib/dom.js";
import { jobPanel, rememberJob } from "../lib/jobs.js";
import { fillProjectPicker, listProjects, rememberProject } from "../lib/projects.js";
import { mountShell, showMessage } from "../lib/shell.js";
import { uploadFile } from "../lib/upload.js";

mountShell("projects");

let current = null; // the open project's id

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

async function openProject(id) {
  showMessage("");
  let project;
  try {
    project = await api(`/api/projects/${encodeURIComponent(id)}`);
  } catch (err) {
    showMessage(describeError(err));
    return;
  }
  current = project.id;
  rememberProject(project.id, project.name);
  const url = new URL(window.location.href);
  url.searchParams.set("project", project.id);
  window.history.replaceState(null, "", url);
  byId("project").hidden = false;
  byId("project-title").textContent = project.name;
  drawProject(project);
  loadGit();
}

function drawProject(project) {
  byId("project-facts").replaceChildren(
    h("code", {}, project.id),
    ` · version ${project.version} · ${project.files.length} files · ${formatBytes(project.size_bytes)} · created ${new Date(project.created_at).toLocaleString()}`,
  );
  const tree = clear(byId("tree"));
  if (!project.files.length) {
    tree.append(h("p", { class: "muted" }, "No files yet: upload some."));
    return;
  }
  tree.append(h("ul", {}, (project.tree.children || []).map(treeNode)));
}

function treeNode(node) {
  if (node.type === "dir") {
    return h(
      "li",
      { class: "dir", dataset: { path: node.path } },
      h("details", { open: true }, h("summary", {}, `${node.name}/`, h("span", { class: "size" }, formatBytes(node.size))), h("ul", {}, (node.children || []).map(treeNode))),
    );
  }
  return h(
    "li",
    { class: "file", dataset: { path: node.path } },
    h(
      "a",
      {
        href: "#",
        onclick: (event) => {
          event.preventDefault();
          downloadFile(`/api/projects/${current}/download?path=${encodeURIComponent(node.path)}`, node.name).catch((err) => showMessage(describeError(err)));
        },
      },
      node.name,
    ),
    h("span", { class: "size" }, formatBytes(node.size)),
  );
}

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
      },
    });
  } catch (err) {
    showMessage(describeError(err));
  }
});

const wanted = new URLSearchParams(window.location.search).get("project");
if (wanted) openProject(wanted);
