// Scores as bars (threshold marked, flagged highlighted), score heads, and a video's timeline.
import { element } from "./api.js";

const pct = (value) => `${Math.max(0, Math.min(100, value * 100)).toFixed(2)}%`;

function bar(name, score, { threshold = null, action = null, flagged = false, safe = false } = {}) {
  const row = element("div", `bar-row${flagged ? " flagged" : ""}${safe ? " safe" : ""}`);
  row.dataset.category = name;
  row.append(element("span", "bar-name", name));
  const track = element("span", "bar-track");
  track.setAttribute("role", "meter");
  track.setAttribute("aria-label", `${name} probability`);
  track.setAttribute("aria-valuemin", "0");
  track.setAttribute("aria-valuemax", "1");
  track.setAttribute("aria-valuenow", String(score));
  const fill = element("span", "bar-fill");
  fill.style.width = pct(score);
  track.append(fill);
  if (threshold !== null && !safe) {
    const mark = element("span", "bar-threshold");
    mark.style.left = pct(threshold);
    mark.title = `threshold ${threshold}`;
    track.append(mark);
  }
  row.append(track, element("span", "bar-value", score.toFixed(3)));
  let note = "";
  if (safe) note = "safe class";
  else if (action) note = `≥ ${threshold} → ${action}${flagged ? " (flagged)" : ""}`;
  row.append(element("span", "bar-note", note));
  return row;
}

// A /v1/moderate answer: one bar per category of the policy, most probable first.
export function policyBars(container, result, policy) {
  container.replaceChildren();
  const byName = new Map((policy ? policy.categories : []).map((c) => [c.name, c]));
  const flagged = new Set(result.flagged);
  const names = Object.keys(result.scores).sort((a, b) => result.scores[b] - result.scores[a]);
  for (const name of names) {
    const category = byName.get(name) || {};
    container.append(
      bar(name, result.scores[name], {
        threshold: category.threshold ?? null,
        action: category.action ?? null,
        safe: Boolean(category.safe),
        flagged: flagged.has(name),
      }),
    );
  }
}

// A /classify/ answer: one bar per class named, the prediction highlighted.
export function classBars(container, result) {
  container.replaceChildren();
  const probabilities = result.label_probabilities;
  const names = Object.keys(probabilities).sort((a, b) => probabilities[b] - probabilities[a]);
  for (const name of names) {
    container.append(bar(name, probabilities[name], { flagged: name === result.prediction }));
  }
}

// Score heads (e.g. aesthetics 0-10), each against its range when the head declares one.
export function headScores(container, scores, policy) {
  container.replaceChildren();
  const ranges = new Map((policy ? policy.scores : []).map((s) => [s.name, s.score_range]));
  for (const [name, value] of Object.entries(scores || {})) {
    const range = ranges.get(name);
    const row = element("div", "bar-row head");
    row.dataset.score = name;
    row.append(element("span", "bar-name", name));
    const track = element("span", "bar-track");
    const fill = element("span", "bar-fill");
    fill.style.width = range ? pct((value - range[0]) / (range[1] - range[0] || 1)) : "0%";
    track.append(fill);
    const text = range ? `${value.toFixed(2)} of ${range[0]}–${range[1]}` : value.toFixed(3);
    row.append(track, element("span", "bar-value", text), element("span", "bar-note", "score head"));
    container.append(row);
  }
}

// A /v1/moderate/video answer: per category a lane of the sampled frames' scores, the flagged segments
// on top; clicking a segment (or anywhere on a lane) seeks the preview there.
export function timeline(container, result, policy, video) {
  container.replaceChildren();
  const lastFrame = result.frames.length ? result.frames[result.frames.length - 1].time_s : 0;
  const duration = result.duration_s > 0 ? result.duration_s : lastFrame + 1;
  const at = (seconds) => pct(seconds / duration);
  const seek = (seconds) => {
    video.currentTime = Math.max(0, Math.min(seconds, duration));
  };
  const categories = (policy ? policy.categories : []).filter((c) => !c.safe);
  const names = categories.length
    ? categories.map((c) => c.name)
    : Object.keys(result.frames[0] ? result.frames[0].scores : {});
  container.append(element("h2", "", `Timeline: ${result.frames.length} sampled frames over ${duration.toFixed(1)} s`));
  const playheads = [];
  for (const name of names) {
    const lane = element("div", "lane");
    lane.dataset.category = name;
    lane.append(element("span", "lane-name", name));
    const track = element("div", "lane-track");
    track.title = `${name}: click to seek`;
    track.addEventListener("click", (event) => {
      if (event.target.closest(".segment")) return;
      const box = track.getBoundingClientRect();
      seek(((event.clientX - box.left) / box.width) * duration);
    });
    const threshold = (categories.find((c) => c.name === name) || {}).threshold;
    if (threshold !== undefined) {
      const mark = element("span", "lane-threshold");
      mark.style.bottom = pct(threshold);
      track.append(mark);
    }
    // A sampled frame stands for the time from its instant to the next sample's (the last: to the end).
    result.frames.forEach((frame, i) => {
      const score = frame.scores[name] ?? 0;
      const until = i + 1 < result.frames.length ? result.frames[i + 1].time_s : duration;
      const tick = element("span", `tick${frame.flagged.includes(name) ? " flagged" : ""}`);
      tick.style.left = at(frame.time_s);
      tick.style.width = pct(Math.max(until - frame.time_s, 0) / duration);
      tick.style.height = pct(score);
      tick.title = `${frame.time_s.toFixed(2)} s: ${name} ${score.toFixed(3)}`;
      track.append(tick);
    });
    for (const segment of result.segments.filter((s) => s.category === name)) {
      const button = element("button", `segment action-${segment.action}`);
      button.type = "button";
      button.style.left = at(segment.start_s);
      button.style.width = pct((segment.end_s - segment.start_s) / duration);
      const label = `${name} ${segment.start_s.toFixed(1)}–${segment.end_s.toFixed(1)} s, peak ${segment.peak_score.toFixed(3)}, ${segment.action}`;
      button.title = label;
      button.setAttribute("aria-label", `seek to ${label}`);
      button.dataset.start = String(segment.start_s);
      button.addEventListener("click", () => seek(segment.start_s));
      track.append(button);
    }
    const playhead = element("span", "playhead");
    track.append(playhead);
    playheads.push(playhead);
    lane.append(track);
    container.append(lane);
  }
  const list = element("ul", "segments");
  for (const segment of result.segments) {
    const item = element("li");
    const link = element("button", "segment-link", `${segment.category}: ${segment.start_s.toFixed(1)}–${segment.end_s.toFixed(1)} s (peak ${segment.peak_score.toFixed(3)}, ${segment.action})`);
    link.type = "button";
    link.addEventListener("click", () => seek(segment.start_s));
    item.append(link);
    list.append(item);
  }
  if (!result.segments.length) list.append(element("li", "muted", "no flagged segment"));
  container.append(list);
  video.ontimeupdate = () => {
    for (const playhead of playheads) playhead.style.left = at(video.currentTime);
  };
  container.hidden = false;
}
