// GET /: judge an image or a video by a policy (or zero-shot classes) and show why.
import { api, errorText, getJSON, showError, wireKeyControls } from "./api.js";
import { classBars, headScores, policyBars, timeline } from "./render.js";

const $ = (id) => document.getElementById(id);
const VIDEO_EXTENSIONS = /\.(mp4|m4v|mov|3gp|webm|mkv|avi|ts|mpe?g)(\?|#|$)/i;
const state = { file: null, policies: new Map(), preview: null };

function chooseFile(file) {
  state.file = file;
  $("file-name").textContent = file ? `${file.name} (${file.type || "unknown type"}, ${file.size} bytes)` : "";
  if (file) $("url").value = "";
}

function kindOf(file, url) {
  const forced = $("kind").value;
  if (forced !== "auto") return forced;
  if (file) return file.type.startsWith("video/") ? "video" : "image";
  return VIDEO_EXTENSIONS.test(url) ? "video" : "image";
}

async function loadPolicies() {
  const listing = await getJSON("v1/policies");
  const select = $("policy");
  select.replaceChildren();
  for (const policy of listing.policies) {
    state.policies.set(policy.name, policy);
    const option = document.createElement("option");
    option.value = policy.name;
    option.textContent = policy.default ? `${policy.name} (default)` : policy.name;
    option.selected = policy.default;
    select.append(option);
  }
  describePolicy();
}

function describePolicy() {
  const policy = state.policies.get($("policy").value);
  if (!policy) return;
  const flagged = policy.categories.filter((c) => !c.safe);
  const parts = flagged.map((c) => `${c.name} ≥ ${c.threshold} → ${c.action}`);
  const about = (policy.description || policy.name).replace(/\.?$/, ".");
  $("policy-info").textContent = `${about} Flags: ${parts.join(", ")}.`;
}

function showPreview(kind, file, url) {
  const image = $("preview-image");
  const video = $("preview-video");
  if (state.preview) URL.revokeObjectURL(state.preview);
  state.preview = file ? URL.createObjectURL(file) : null;
  const source = state.preview || url;
  image.hidden = kind !== "image";
  video.hidden = kind !== "video";
  if (kind === "image") image.src = source;
  else video.src = source;
}

function request(kind, mode, file, url) {
  const form = new FormData();
  if (mode === "classes") {
    if (kind === "video") throw new Error("zero-shot classes judge images only; choose a policy for a video");
    form.append("classes", $("classes").value);
    if (file) form.append("image", file);
    else form.append("location", url);
    return ["classify/", form];
  }
  form.append("policy", $("policy").value);
  if (file) form.append(kind === "video" ? "video" : "image", file);
  else form.append("location", url);
  return [kind === "video" ? "v1/moderate/video" : "v1/moderate", form];
}

function render(kind, mode, result, roundTripMs) {
  const verdict = $("verdict");
  $("timeline").hidden = true;
  $("heads").replaceChildren();
  if (mode === "classes") {
    verdict.textContent = result.result.prediction;
    verdict.className = "verdict prediction";
    $("summary-text").textContent = `zero-shot, ${Math.round(roundTripMs)} ms round trip`;
    classBars($("bars"), result.result);
    return;
  }
  const policy = state.policies.get(result.policy);
  verdict.textContent = result.verdict;
  verdict.className = `verdict verdict-${result.verdict}`;
  const frames = kind === "video" ? `${result.frames_scored} frames of ${result.duration_s} s, ` : "";
  $("summary-text").textContent =
    `policy ${result.policy}, ${frames}${result.elapsed_ms} ms on the server, ${Math.round(roundTripMs)} ms round trip`;
  if (kind === "video") {
    const peaks = {};
    for (const frame of result.frames) {
      for (const [name, score] of Object.entries(frame.scores)) peaks[name] = Math.max(peaks[name] ?? 0, score);
    }
    const flagged = [...new Set(result.segments.map((s) => s.category))];
    policyBars($("bars"), { scores: peaks, flagged }, policy);
    timeline($("timeline"), result, policy, $("preview-video"));
  } else {
    policyBars($("bars"), result, policy);
    headScores($("heads"), result.head_scores, policy);
  }
}

async function judge(event) {
  event.preventDefault();
  showError("");
  const url = $("url").value.trim();
  const file = state.file;
  if (!file && !url) {
    showError("choose a file, drop one, or paste a URL");
    return;
  }
  const kind = kindOf(file, url);
  const mode = document.querySelector("input[name=mode]:checked").value;
  $("busy").hidden = false;
  $("judge").disabled = true;
  try {
    const [path, body] = request(kind, mode, file, url);
    const started = performance.now();
    const response = await api(path, { method: "POST", body });
    if (!response.ok) throw new Error(await errorText(response));
    const result = await response.json();
    showPreview(kind, file, url);
    render(kind, mode, result, performance.now() - started);
    $("result").hidden = false;
  } catch (error) {
    showError(error.message);
  } finally {
    $("busy").hidden = true;
    $("judge").disabled = false;
  }
}

function wireDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) chooseFile(event.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file").click();
  });
  $("file").addEventListener("change", () => chooseFile($("file").files[0] || null));
  $("url").addEventListener("input", () => {
    if ($("url").value) {
      state.file = null;
      $("file").value = "";
      $("file-name").textContent = "";
    }
  });
}

wireKeyControls();
wireDrop();
$("policy").addEventListener("change", describePolicy);
$("try-form").addEventListener("submit", judge);
loadPolicies().catch((error) => showError(`could not list the policies: ${error.message}`));
