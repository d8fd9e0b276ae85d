// The frame every page shares: the navigation, the signed-in state and a message area.
// A page calls mountShell("name") first; without a key it sends the visitor to sign in.
import "../style.css";
import { getKey, signOut } from "./api.js";

export const PAGES = [
  ["actions", "Actions", "/actions.html"],
  ["jobs", "Jobs", "/jobs.html"],
  ["reports", "Reports", "/reports.html"],
  ["projects", "Projects", "/projects.html"],
  ["terminal", "Terminal", "/terminal.html"],
  ["monitor", "Monitoring", "/monitor.html"],
  ["editor", "Shared editor", "/editor.html"],
];

export function mountShell(current, { requireKey = true } = {}) {
  if (requireKey && !getKey()) {
    const next = encodeURIComponent(window.location.pathname + window.location.search);
    window.location.replace(`/index.html?next=${next}`);
    throw new Error("not signed in");
  }
  const nav = document.createElement("nav");
  nav.className = "topnav";
  const brand = document.createElement("a");
  brand.href = "/actions.html";
  brand.className = "brand";
  brand.textContent = "AI Orchestrator";
  nav.append(brand);
  for (const [name, label, href] of PAGES) {
    const link = document.createElement("a");
    link.href = href;
    link.textContent = label;
    link.dataset.page = name;
    if (name === current) link.setAttribute("aria-current", "page");
    nav.append(link);
  }
  if (getKey()) {
    const out = document.createElement("button");
    out.type = "button";
    out.className = "signout";
    out.textContent = "Sign out";
    out.addEventListener("click", () => {
      signOut();
      window.location.assign("/index.html");
    });
    nav.append(out);
  }
  document.body.prepend(nav);
}

// One message line per page (role=alert so it is read out and easy to find in tests).
export function showMessage(text, kind = "error") {
  let box = document.getElementById("message");
  if (!box) {
    box = document.createElement("div");
    box.id = "message";
    box.setAttribute("role", "alert");
    const main = document.querySelector("main");
    if (main) main.prepend(box);
    else document.body.append(box);
  }
  box.className = `message ${kind}`;
  box.textContent = text;
  box.hidden = !text;
}
