// GET /review: the review queue (allow / quarantine, first reviewer wins) and one object's history.
import { api, element, errorText, getJSON, showError, wireKeyControls } from "./api.js";
import { policyBars } from "./render.js";

const $ = (id) => document.getElementById(id);
const REVIEWER = "moderation-reviewer";
const state = { cursor: null, policies: new Map(), selected: null };

function policyOf(name) {
  return state.policies.get(String(name || "").split("@")[0]) || null;
}

function thumbnail(item) {
  const box = element("div", "thumb");
  if (!item.thumbnail_url) {
    box.append(element("span", "muted", "no preview"));
    return box;
  }
  const image = element("img", "blurred");
  image.alt = `${item.key} (hover to unblur)`;
  image.tabIndex = 0;
  image.src = item.thumbnail_url;
  image.addEventListener("error", () => {
    // Not an image: a video object; show its first frame, still blurred.
    const video = element("video", "blurred");
    video.src = item.thumbnail_url;
    video.muted = true;
    video.controls = true;
    video.preload = "metadata";
    image.replaceWith(video);
  });
  box.append(image);
  return box;
}

function card(item) {
  const li = element("li", "card");
  li.tabIndex = 0;
  li.dataset.bucket = item.bucket;
  li.dataset.key = item.key;
  li.dataset.version = item.version;
  li.addEventListener("focus", () => select(li));
  li.append(thumbnail(item));
  const body = element("div", "card-body");
  const title = element("p", "card-title");
  title.append(element("strong", "", item.key), element("span", "muted", ` in ${item.bucket}`));
  body.append(title);
  const top = item.top ? `${item.top} ${Number(item.score ?? 0).toFixed(3)}` : "";
  body.append(
    element("p", "muted", `judged ${item.judged_at} by policy ${item.policy}; top ${top}; version ${item.version_id || item.version}`),
  );
  const bars = element("div", "bars compact");
  policyBars(bars, { scores: item.scores || {}, flagged: item.flagged || [] }, policyOf(item.policy));
  body.append(bars);
  const actions = element("p", "actions");
  const allow = element("button", "allow", "allow (a)");
  allow.type = "button";
  allow.addEventListener("click", () => decide(li, item, "allow"));
  const quarantine = element("button", "quarantine", "quarantine (q)");
  quarantine.type = "button";
  quarantine.addEventListener("click", () => decide(li, item, "quarantine"));
  const history = element("button", "link", "history (h)");
  history.type = "button";
  history.addEventListener("click", () => showHistory(item.bucket, item.key));
  actions.append(allow, " ", quarantine, " ", history);
  body.append(actions, element("p", "card-note"));
  li.append(body);
  li.item = item;
  return li;
}

function select(li) {
  if (state.selected) state.selected.classList.remove("selected");
  state.selected = li;
  if (li) li.classList.add("selected");
}

function move(step) {
  const cards = [...document.querySelectorAll("#queue .card")];
  if (!cards.length) return;
  const at = cards.indexOf(state.selected);
  const next = cards[Math.max(0, Math.min(cards.length - 1, at + step))];
  next.focus();
}

async function loadPage() {
  const query = new URLSearchParams({ limit: "20" });
  if (state.cursor) query.set("cursor", state.cursor);
  const page = await getJSON(`v1/review/queue?${query}`);
  for (const item of page.items) $("queue").append(card(item));
  state.cursor = page.next_cursor;
  $("more").hidden = !state.cursor;
  $("empty").hidden = document.querySelectorAll("#queue .card").length > 0;
  if (!state.selected) {
    const first = document.querySelector("#queue .card");
    if (first) select(first);
  }
}

function removeCard(li, message) {
  const next = li.nextElementSibling || li.previousElementSibling;
  li.remove();
  $("status").textContent = message;
  select(next && next.classList.contains("card") ? next : null);
  if (next) next.focus();
  $("empty").hidden = document.querySelectorAll("#queue .card").length > 0;
}

async function decide(li, item, decision) {
  showError("");
  const reviewer = $("reviewer").value.trim();
  const body = {
    bucket: item.bucket,
    key: item.key,
    version: item.version,
    judged_by: item.judged_by,
    decision,
  };
  if (reviewer) body.reviewer = reviewer;
  for (const button of li.querySelectorAll("button")) button.disabled = true;
  try {
    const response = await api("v1/review/decision", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.ok) {
      const result = await response.json();
      const where = result.quarantine ? ` (moved to ${result.quarantine})` : "";
      removeCard(li, `${decision}: s3://${item.bucket}/${item.key}${where}`);
      return;
    }
    const text = await errorText(response);
    if (response.status === 409) {
      // Someone else decided first, or the object changed: it is no longer this reviewer's to decide.
      removeCard(li, `not ${decision === "allow" ? "allowed" : "quarantined"}: s3://${item.bucket}/${item.key}: ${text}`);
      showError(text);
      return;
    }
    li.querySelector(".card-note").textContent = text;
    showError(text);
  } catch (error) {
    showError(error.message);
  }
  for (const button of li.querySelectorAll("button")) button.disabled = false;
}

function cell(row, text) {
  row.append(element("td", "", text ?? ""));
}

async function showHistory(bucket, key) {
  showError("");
  $("history-bucket").value = bucket;
  $("history-key").value = key;
  const target = $("history");
  target.replaceChildren(element("p", "muted", "loading…"));
  try {
    const query = new URLSearchParams({ bucket, key });
    const history = await getJSON(`v1/review/history?${query}`);
    const table = element("table", "history-table");
    const head = element("tr");
    for (const name of ["judged at", "version", "verdict", "top", "policy", "judged in", "review", "quarantine copy"]) {
      head.append(element("th", "", name));
    }
    table.append(head);
    for (const entry of history.decisions) {
      const row = element("tr");
      cell(row, entry.judged_at);
      cell(row, entry.version_id || entry.version);
      cell(row, entry.verdict);
      cell(row, entry.top ? `${entry.top} ${Number(entry.score ?? 0).toFixed(3)}` : "");
      cell(row, entry.policy);
      cell(row, entry.source);
      const review = entry.review && entry.review.decision
        ? `${entry.review.decision} by ${entry.review.reviewer || entry.review.api_key_id || "?"} at ${entry.review.at}`
        : "";
      cell(row, review);
      cell(row, entry.quarantine || "");
      table.append(row);
    }
    const count = history.decisions.length;
    const title = `s3://${bucket}/${key}: ${count} decision${count === 1 ? "" : "s"}`;
    target.replaceChildren(element("h3", "", title), table);
  } catch (error) {
    target.replaceChildren();
    showError(error.message);
  }
}

function onKey(event) {
  if (event.target.matches("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
  const li = state.selected;
  if (event.key === "j") move(1);
  else if (event.key === "k") move(-1);
  else if (li && event.key === "a") decide(li, li.item, "allow");
  else if (li && event.key === "q") decide(li, li.item, "quarantine");
  else if (li && event.key === "h") showHistory(li.item.bucket, li.item.key);
  else return;
  event.preventDefault();
}

async function start() {
  wireKeyControls();
  $("reviewer").value = sessionStorage.getItem(REVIEWER) || "";
  $("reviewer").addEventListener("change", () => sessionStorage.setItem(REVIEWER, $("reviewer").value.trim()));
  $("more").addEventListener("click", () => loadPage().catch((error) => showError(error.message)));
  $("history-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showHistory($("history-bucket").value.trim(), $("history-key").value);
  });
  document.addEventListener("keydown", onKey);
  try {
    const listing = await getJSON("v1/policies");
    for (const policy of listing.policies) state.policies.set(policy.name, policy);
    await loadPage();
  } catch (error) {
    showError(error.message);
  }
}

start();
