// Resumable chunked upload (README "Project storage"): open an upload, PUT chunks with
// Content-Range; after a drop or a reload, GET the upload and go on from its offset.
// XMLHttpRequest, not fetch: only it reports upload progress within a chunk.
import { ApiError, api, getKey } from "./api.js";

const SAVED = "orchestrator.upload.";

function savedKey(projectId, file) {
  return `${SAVED}${projectId}:${file.name}:${file.size}:${file.lastModified}`;
}

// One PUT; a local chunk carries the key and Content-Range, an S3 part (a presigned
// URL) neither.
function putChunk(url, blob, start, total, onProgress, signal, { presigned = false } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    const key = getKey();
    if (key && !presigned) xhr.setRequestHeader("X-API-Key", key);
    if (!presigned) xhr.setRequestHeader("Content-Range", `bytes ${start}-${start + blob.size - 1}/${total}`);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // not JSON
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else {
        const error = (body && body.error) || {};
        reject(new ApiError(xhr.status, error.code || "http_error", error.message || xhr.statusText, body, xhr.getResponseHeader("Retry-After")));
      }
    };
    xhr.onerror = () => reject(new Error("the connection dropped"));
    xhr.onabort = () => reject(new DOMException("paused", "AbortError"));
    if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(blob);
  });
}

// Upload `file` into the project; onProgress(sent, total, upload). Resumes an upload
// of the same file (name, size, date) this tab started. Returns the final upload.
export async function uploadFile(projectId, file, { chunkSize = 1024 * 1024, onProgress = () => {}, signal } = {}) {
  const remember = savedKey(projectId, file);
  let upload = null;
  const saved = sessionStorage.getItem(remember);
  if (saved) {
    try {
      upload = await api(`/api/projects/${projectId}/uploads/${saved}`);
      if (upload.state !== "receiving") upload = null;
    } catch {
      upload = null; // gone or refused: start again
    }
  }
  if (!upload) {
    upload = await api(`/api/projects/${projectId}/uploads`, { method: "POST", body: { filename: file.name, size: file.size } });
    sessionStorage.setItem(remember, upload.upload_id);
  }
  if (upload.backend === "s3") return uploadParts(projectId, file, upload, remember, onProgress, signal);
  let offset = upload.offset;
  let drops = 0;
  onProgress(offset, file.size, upload);
  while (upload.state === "receiving" && offset < file.size) {
    const end = Math.min(offset + chunkSize, file.size);
    try {
      upload = await putChunk(upload.upload_url, file.slice(offset, end), offset, file.size, (loaded) => onProgress(offset + loaded, file.size, upload), signal);
      offset = upload.offset;
      drops = 0;
    } catch (err) {
      if (err.name === "AbortError") throw err;
      if (err instanceof ApiError && err.status === 409 && err.body && err.body.error && typeof err.body.error.offset === "number") {
        offset = err.body.error.offset; // the server says where it stands
        upload = await api(`/api/projects/${projectId}/uploads/${upload.upload_id}`);
        continue;
      }
      if (!(err instanceof ApiError) && drops < 5) {
        drops += 1; // a dropped connection: ask where it stands, then go on
        await new Promise((resolve) => setTimeout(resolve, 500 * drops));
        upload = await api(`/api/projects/${projectId}/uploads/${upload.upload_id}`);
        offset = upload.offset;
        continue;
      }
      throw err;
    }
    onProgress(offset, file.size, upload);
  }
  sessionStorage.removeItem(remember);
  return upload;
}

// S3 (on AWS): the parts still missing go straight to their presigned URLs, then
// complete_url assembles them; the answer is "verifying" with the job that unpacks it.
async function uploadParts(projectId, file, upload, remember, onProgress, signal) {
  const status = `/api/projects/${projectId}/uploads/${upload.upload_id}`;
  let sent = upload.offset || 0;
  for (let round = 0; round < 5 && upload.parts && upload.parts.length; round += 1) {
    try {
      for (const part of upload.parts) {
        const blob = file.slice(part.first, part.last + 1);
        await putChunk(part.url, blob, part.first, file.size, (loaded) => onProgress(sent + loaded, file.size, upload), signal, { presigned: true });
        sent += blob.size;
        onProgress(sent, file.size, upload);
      }
      break;
    } catch (err) {
      if (err.name === "AbortError") throw err;
      upload = await api(status); // fresh URLs for the parts S3 does not hold yet
      sent = upload.offset || 0;
    }
  }
  const done = await api(upload.complete_url || `${status}/complete`, { method: "POST" });
  sessionStorage.removeItem(remember);
  return done;
}
