// The endpoint's web page: an image (dropped, picked or an example) translated in every served direction.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { directions: ["a2b", "b2a"], resolutions: ["model"], urls: [] };
const NAMES = { a2b: "A \u2192 B", b2a: "B \u2192 A" };
const ACCEPTED = ["image/png", "image/jpeg"];

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

// What a person should read for each refusal: the server's own detail, in words first.
function explain(status, detail) {
  const words = {
    400: "The image could not be translated",
    401: "This endpoint needs an access token: enter it under \u201cAccess token\u201d",
    408: "The upload took too long",
    413: "The image is too large",
    415: "Only PNG and JPEG images can be translated",
    429: "Too many requests; wait a moment",
    503: "The endpoint is busy; try again in a moment",
  }[status] || "The server could not translate the image (" + status + ")";
  return detail && status !== 401 ? words + ": " + detail : words + ".";
}

async function refusal(response) {
  let detail = "";
  try { detail = (await response.json()).detail || ""; } catch (_) { /* not JSON */ }
  return explain(response.status, detail);
}

function fact(name, value) {
  const row = document.createElement("div");
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = name;
  dd.textContent = value;
  row.append(dt, dd);
  return row;
}

async function loadInfo() {
  let response;
  try {
    response = await fetch("info", { headers: authHeaders() });
  } catch (err) {
    setStatus("The endpoint could not be reached.", true);
    return false;
  }
  if (!response.ok) {
    if (response.status === 401) $("token-box").open = true;
    $("facts").replaceChildren(fact("model", "unknown until the token is given"));
    setStatus(await refusal(response), true);
    return false;
  }
  const info = await response.json();
  state.directions = info.directions;
  state.resolutions = info.resolutions || ["model"];
  $("facts").replaceChildren(
    fact("method", info.method), fact("backend", info.backend), fact("model size", info.image_size + " px"),
    fact("step", info.step ?? "unknown"), fact("EMA weights", info.ema ? "yes" : "no"),
    fact("directions", info.directions.map((d) => NAMES[d]).join(", ")),
    fact("checkpoint", info.checkpoint), fact("revision", info.model_revision));
  const full = $("res-full");
  full.disabled = !state.resolutions.includes("full");
  full.parentElement.title = full.disabled ? "this translator takes its training size only" : "";
  return true;
}

async function loadExamples() {
  const response = await fetch("examples", { headers: authHeaders() });
  if (!response.ok) return;
  const examples = await response.json();
  const list = $("examples");
  list.replaceChildren();
  for (const example of examples) {
    const image = await fetch("examples/" + example.index, { headers: authHeaders() });
    if (!image.ok) continue;
    const blob = await image.blob();
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example";
    button.setAttribute("aria-label", "translate example " + example.name + " (domain " + example.domain + ")");
    const img = document.createElement("img");
    img.alt = "";
    img.src = URL.createObjectURL(blob);
    const caption = document.createElement("span");
    caption.textContent = "domain " + example.domain;
    button.append(img, caption);
    button.addEventListener("click", () => translateAll(blob, example.name));
    list.append(button);
  }
  $("examples-section").hidden = list.children.length === 0;
}

function figure(id, title) {
  const fig = document.createElement("figure");
  fig.id = "fig-" + id;
  const caption = document.createElement("figcaption");
  const label = document.createElement("span");
  label.textContent = title;
  caption.append(label);
  fig.append(caption);
  return fig;
}

function showImage(fig, imgId, blob) {
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  const img = document.createElement("img");
  img.id = imgId;
  img.alt = fig.querySelector("span").textContent;
  img.addEventListener("load", () => {
    fig.querySelector("span").textContent += " \u2014 " + img.naturalWidth + "\u00d7" + img.naturalHeight;
  }, { once: true });
  img.addEventListener("error", () => {  // a file the browser cannot show: say so, never a broken image
    const note = document.createElement("p");
    note.textContent = "(this file cannot be shown)";
    img.replaceWith(note);
  }, { once: true });
  img.src = url;
  fig.prepend(img);
  return url;
}

async function translateOne(blob, direction, resolution, fig, stem) {
  const note = document.createElement("p");
  note.textContent = "translating\u2026";
  fig.prepend(note);
  const response = await fetch("translate?direction=" + direction + "&resolution=" + resolution, {
    method: "POST", headers: { "Content-Type": blob.type, ...authHeaders() }, body: blob,
  });
  note.remove();
  if (!response.ok) throw new Error(NAMES[direction] + ": " + (await refusal(response)));
  const url = showImage(fig, "out-" + direction, await response.blob());
  const link = document.createElement("a");
  link.id = "download-" + direction;
  link.href = url;
  link.download = stem + "_" + direction + ".png";
  link.textContent = "download";
  fig.querySelector("figcaption").append(link);
}

async function translateAll(blob, name) {
  if (!ACCEPTED.includes(blob.type)) {
    setStatus(explain(415, name + " is " + (blob.type || "of an unknown type")), true);
    return;
  }
  state.urls.forEach((url) => URL.revokeObjectURL(url));
  state.urls = [];
  const resolution = document.querySelector("input[name=resolution]:checked").value;
  const stem = name.replace(/\.[^.]+$/, "");
  const input = figure("input", "input");
  showImage(input, "input", blob);
  const outputs = state.directions.map((d) => [d, figure(d, NAMES[d])]);
  $("results").replaceChildren(input, ...outputs.map(([, fig]) => fig));
  $("results").hidden = false;
  setStatus("Translating " + name + "\u2026", false);
  const started = performance.now();
  const done = await Promise.allSettled(outputs.map(([d, fig]) => translateOne(blob, d, resolution, fig, stem)));
  const failed = done.filter((r) => r.status === "rejected").map((r) => r.reason.message || String(r.reason));
  if (failed.length) setStatus(failed.join(" "), true);
  else setStatus("Done in " + Math.round(performance.now() - started) + " ms.", false);
}

function picked(file) {
  if (file) translateAll(file, file.name);
}

$("file").addEventListener("change", () => picked($("file").files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  picked(event.dataTransfer.files[0]);
});
$("token-apply").addEventListener("click", async () => { if (await loadInfo()) { setStatus("Token accepted.", false); loadExamples(); } });

loadInfo().then((ok) => { if (ok) loadExamples(); });
