// The endpoint's web page: posts the chosen file to /translate in both directions and shows the PNGs.
"use strict";

const statusLine = document.getElementById("status");

function setStatus(text, isError) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
}

function authHeaders() {
  const token = document.getElementById("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

async function describeModel() {
  const info = document.getElementById("info");
  try {
    const response = await fetch("info", { headers: authHeaders() });
    if (!response.ok) {
      info.textContent = "Model information needs a token (" + response.status + ").";
      return;
    }
    const body = await response.json();
    info.textContent = body.method + " model, " + body.image_size + "x" + body.image_size +
      " (inputs are resized to that and back), checkpoint " + body.checkpoint;
  } catch (err) {
    info.textContent = "Model information unavailable: " + err;
  }
}

async function translate(file, direction) {
  const response = await fetch("translate?direction=" + direction, {
    method: "POST",
    headers: { "Content-Type": file.type || "application/octet-stream", ...authHeaders() },
    body: file,
  });
  if (!response.ok) {
    let reason = response.statusText;
    try { reason = (await response.json()).detail; } catch (_) { /* not JSON */ }
    throw new Error(direction + ": " + response.status + " " + reason);
  }
  return URL.createObjectURL(await response.blob());
}

function show(id, url) {
  const img = document.getElementById(id);
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = url;
  img.src = url;
}

document.getElementById("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("file").files[0];
  if (!file) { setStatus("Choose an image first.", true); return; }
  show("input", URL.createObjectURL(file));
  setStatus("Translating " + file.name + "...", false);
  const started = performance.now();
  try {
    const [a2b, b2a] = await Promise.all([translate(file, "a2b"), translate(file, "b2a")]);
    show("out-a2b", a2b);
    show("out-b2a", b2a);
    setStatus("Done in " + Math.round(performance.now() - started) + " ms.", false);
  } catch (err) {
    setStatus(String(err.message || err), true);
  }
});

describeModel();
