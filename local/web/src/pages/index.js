// Sign in: the key is checked with one authenticated call before it is kept.
import { ApiError, api, describeError, setKey, signOut } from "../lib/api.js";
import { mountShell, showMessage } from "../lib/shell.js";

mountShell("", { requireKey: false });

document.getElementById("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = document.getElementById("api-key").value.trim();
  if (!key) return;
  setKey(key);
  try {
    await api("/api/metrics?minutes=1");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) signOut();
    showMessage(describeError(err));
    return;
  }
  const next = new URLSearchParams(window.location.search).get("next");
  // Only a path on this site: ?next= must not send the key's holder elsewhere.
  window.location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : "/actions.html");
});
