// Calls to the JSON API: every call sends x-api-key; a key is asked for once and kept in sessionStorage.
const KEY_NAME = "moderation-api-key";

export function apiKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
  showKeyState();
}

export function showKeyState() {
  const state = document.getElementById("key-state");
  const forget = document.getElementById("key-forget");
  if (!state) return;
  state.textContent = apiKey() ? "API key set for this tab" : "no API key";
  forget.hidden = !apiKey();
}

// API Gateway refuses a missing or wrong key with 403 {"message": "Forbidden"}; the app's own refusals
// always carry a `detail`, so only a refusal without one asks for a key.
async function refusedForKey(response) {
  if (response.status !== 401 && response.status !== 403) return false;
  try {
    const body = await response.clone().json();
    return !(body && "detail" in body);
  } catch {
    return true;
  }
}

function askForKey(reason) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-reason").textContent = reason;
  input.value = "";
  return new Promise((resolve, reject) => {
    const form = document.getElementById("key-form");
    const cancel = document.getElementById("key-cancel");
    const done = (key) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.close();
      if (key) resolve(key);
      else reject(new Error("this API needs a key; none was given"));
    };
    const onSubmit = (event) => {
      event.preventDefault();
      done(input.value.trim());
    };
    const onCancel = () => done("");
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.showModal();
    input.focus();
  });
}

export async function api(path, init = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = new Headers(init.headers || {});
    headers.set("x-api-key", apiKey());
    const response = await fetch(path, { ...init, headers, cache: "no-store" });
    if (attempt >= 2 || !(await refusedForKey(response))) return response;
    const reason = apiKey()
      ? "The API refused this key. Enter another (kept in this tab only)."
      : "This API needs a key. It is kept in this tab only (session storage).";
    sessionStorage.setItem(KEY_NAME, await askForKey(reason));
    showKeyState();
  }
}

// The API's own explanation: `detail` (a string, or FastAPI's list of field errors), else API
// Gateway's `message`, else the status line.
export async function errorText(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  let text = `${response.status} ${response.statusText}`.trim();
  if (body && typeof body.detail === "string") text = body.detail;
  else if (body && Array.isArray(body.detail)) {
    text = body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  } else if (body && typeof body.message === "string") text = body.message;
  return `${response.status}: ${text}`;
}

export async function getJSON(path, init = {}) {
  const response = await api(path, init);
  if (!response.ok) throw new Error(await errorText(response));
  return response.json();
}

export function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function wireKeyControls() {
  showKeyState();
  document.getElementById("key-forget").addEventListener("click", forgetKey);
}
