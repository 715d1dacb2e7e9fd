// Operator console of the clarify node. Every value from the node (names, operators,
// messages) is inserted with textContent or DOM calls, never as HTML.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PLOT_WIDTH = 300;
const PLOT_HEIGHT = 60;
// Playback rate when the recording has no step period (Transition topics).
const DEFAULT_STEP_SECS = 0.1;
// Checks of a clip that is still rendering, and the wait between two.
const MEDIA_POLLS = 60;
const MEDIA_POLL_MS = 3000;

const state = {
  session: null,
  operator: "",
  query: null,
  shownAt: 0,
  steps: null, // { left, right } step documents of the current query
  selected: null, // Set of chosen channel keys, e.g. "observation:3"
  cursors: [],
  playStart: 0,
  busy: false,
  leaseTimer: null,
  frames: {}, // camera frame views by side: { image, frames, episode, start, shown }
};

const $ = (id) => document.getElementById(id);

function setMessage(text, kind) {
  const message = $("message");
  message.textContent = text;
  message.className = kind === "info" ? "message info" : "message";
}

// Sends a request to the node's API and returns { ok, status, body }.
async function api(path, options = {}) {
  const init = { method: options.method || "GET", credentials: "same-origin", headers: {} };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    return { ok: false, status: 0, body: { message: `the node is not reachable: ${error}` } };
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = { message: `HTTP ${response.status}` };
  }
  if (response.status === 401 || response.status === 403) {
    $("login").hidden = false;
  }
  return { ok: response.ok, status: response.status, body };
}

function operatorReady() {
  if (state.operator === "") {
    setMessage("Enter your operator name to answer.", "info");
    return false;
  }
  return true;
}

function setButtonsEnabled() {
  const haveQuery = state.query !== null && state.operator !== "";
  for (const id of ["answer-left", "answer-right", "answer-cant-tell", "answer-skip"]) {
    $(id).disabled = !haveQuery || state.busy;
  }
  $("undo").disabled = state.operator === "" || state.busy;
}

// ---- Query view -------------------------------------------------------------------------

function segmentPath(segment, kind) {
  return `/api/segments/${segment.episode_id}/${segment.start}/${segment.length}/${kind}`;
}

function describeSegment(segment) {
  return `episode ${segment.episode_id}, steps ${segment.start}–${segment.start + segment.length - 1}`;
}

async function loadNext() {
  if (!operatorReady()) {
    showQuery(null);
    return;
  }
  const result = await api("/api/next", { method: "POST", body: { operator: state.operator } });
  if (!result.ok) {
    setMessage(result.body.message || "Failed to get the next query.");
    return;
  }
  if (result.body.query === null) {
    showQuery(null);
    setMessage(result.body.reason, "info");
    return;
  }
  if (state.query === null || state.query.id !== result.body.query.id) {
    await showQuery(result.body.query);
  }
}

async function showQuery(query) {
  state.query = query;
  state.steps = null;
  state.shownAt = performance.now();
  clearInterval(state.leaseTimer);
  state.leaseTimer = null;
  const plots = $("plots");
  plots.replaceChildren();
  state.cursors = [];
  $("media").hidden = true;
  if (query === null) {
    $("query-title").textContent = "No query";
    $("playhead").textContent = "";
    setButtonsEnabled();
    return;
  }
  $("query-title").textContent = `Query ${query.id}`;
  $("query-title").title = `left: ${describeSegment(query.left)}; right: ${describeSegment(query.right)}`;
  setButtonsEnabled();
  // Asking again renews the lease, so other operators keep getting other queries.
  const renewMs = Math.max(1000, (state.session.lease_secs * 1000) / 2);
  state.leaseTimer = setInterval(() => {
    if (state.query !== null) {
      api("/api/next", { method: "POST", body: { operator: state.operator } });
    }
  }, renewMs);
  const [left, right] = await Promise.all([
    api(segmentPath(query.left, "steps")),
    api(segmentPath(query.right, "steps")),
  ]);
  if (state.query !== query) return;
  if (!left.ok || !right.ok) {
    setMessage((left.ok ? right : left).body.message || "Failed to load the segments.");
    return;
  }
  state.steps = { left: left.body, right: right.body };
  buildChannelPicker();
  drawPlots();
  state.playStart = performance.now();
  showMedia(query);
}

// Shows each segment's camera frames or rendered clip above the plots. Frames follow the
// shared playhead; a clip is an animated WebP that loops by itself. While a clip renders,
// the node is asked again every few seconds.
async function showMedia(query, attempt = 0) {
  const sides = [["left", query.left], ["right", query.right]];
  const results = await Promise.all(sides.map(([, segment]) => api(segmentPath(segment, "media"))));
  if (state.query !== query) return;
  state.frames = {};
  let shown = false;
  let pending = false;
  results.forEach((result, index) => {
    const [side, segment] = sides[index];
    const box = $(`media-${side}`);
    box.replaceChildren();
    const media = result.ok ? result.body : { kind: "none" };
    if (media.kind === "frames" && media.count > 0) {
      const image = mediaImage(side, `/api/frames/${segment.episode_id}/${media.frames[0].step}`);
      box.append(image);
      state.frames[side] = { image, frames: media.frames, episode: segment.episode_id, start: segment.start, shown: media.frames[0].step };
      shown = true;
    } else if (media.kind === "clip" && media.state === "ready") {
      box.append(mediaImage(side, segmentPath(segment, "clip")));
      shown = true;
    } else if (media.kind === "clip") {
      pending = pending || media.state === "pending";
      box.textContent = media.state === "pending" ? "rendering the clip…" : `no clip: ${media.reason || media.state}`;
      shown = true;
    }
  });
  $("media").hidden = !shown;
  if (pending && attempt < MEDIA_POLLS) {
    setTimeout(() => showMedia(query, attempt + 1), MEDIA_POLL_MS);
  }
}

function mediaImage(side, source) {
  const image = document.createElement("img");
  image.className = "media-image";
  image.alt = `${side} segment`;
  image.src = source;
  return image;
}

// Shows the camera frame of `step` (counted from the segment's start): the frame of the
// nearest earlier step that has one.
function showFrames(step) {
  for (const view of Object.values(state.frames || {})) {
    let frame = view.frames[0];
    for (const candidate of view.frames) {
      if (candidate.step > view.start + step) break;
      frame = candidate;
    }
    if (frame.step !== view.shown) {
      view.shown = frame.step;
      view.image.src = `/api/frames/${view.episode}/${frame.step}`;
    }
  }
}

function channelList() {
  const steps = state.steps.left;
  const observations = steps.observation_names.map((name, index) => ({
    key: `observation:${index}`, name, kind: "observations", index,
  }));
  const actions = steps.action_names.map((name, index) => ({
    key: `action:${index}`, name: `action ${name}`, kind: "actions", index,
  }));
  return observations.concat(actions);
}

function loadSelection(channels) {
  if (state.selected !== null) return;
  const saved = localStorage.getItem("clarify.channels");
  if (saved !== null) {
    try {
      state.selected = new Set(JSON.parse(saved));
      return;
    } catch (_) {
      // A damaged entry falls back to the default choice.
    }
  }
  const observations = channels.filter((channel) => channel.kind === "observations").slice(0, 3);
  const actions = channels.filter((channel) => channel.kind === "actions").slice(0, 2);
  state.selected = new Set(observations.concat(actions).map((channel) => channel.key));
}

function buildChannelPicker() {
  const channels = channelList();
  loadSelection(channels);
  const picker = $("channel-picker");
  picker.replaceChildren();
  for (const channel of channels) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = state.selected.has(channel.key);
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(channel.key);
      else state.selected.delete(channel.key);
      localStorage.setItem("clarify.channels", JSON.stringify([...state.selected]));
      drawPlots();
    });
    label.append(box, document.createTextNode(` ${channel.name}`));
    picker.append(label);
  }
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, String(value));
  }
  return element;
}

// Draws one channel of one segment, scaled to the shared range [low, high].
function plotSide(values, side, low, high) {
  const svg = svgElement("svg", {
    viewBox: `0 0 ${PLOT_WIDTH} ${PLOT_HEIGHT}`,
    preserveAspectRatio: "none",
    role: "img",
  });
  const span = high - low || 1;
  const last = Math.max(1, values.length - 1);
  const points = values
    .map((value, step) => {
      const x = (step / last) * PLOT_WIDTH;
      const y = Number.isFinite(value) ? PLOT_HEIGHT - ((value - low) / span) * (PLOT_HEIGHT - 4) - 2 : PLOT_HEIGHT / 2;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
  svg.append(svgElement("polyline", { points, class: `trace ${side}` }));
  const cursor = svgElement("line", { x1: 0, x2: 0, y1: 0, y2: PLOT_HEIGHT, class: "cursor" });
  svg.append(cursor);
  state.cursors.push({ cursor, length: values.length });
  return svg;
}

function drawPlots() {
  const plots = $("plots");
  plots.replaceChildren();
  state.cursors = [];
  if (state.steps === null) return;
  for (const channel of channelList()) {
    if (!state.selected.has(channel.key)) continue;
    const column = (document) => document[channel.kind].map((row) => row[channel.index]);
    const left = column(state.steps.left);
    const right = column(state.steps.right);
    const finite = left.concat(right).filter((value) => Number.isFinite(value));
    const low = finite.length ? Math.min(...finite) : 0;
    const high = finite.length ? Math.max(...finite) : 1;
    const row = document.createElement("div");
    row.className = "plot-row";
    const title = document.createElement("div");
    title.className = "plot-title";
    title.textContent = `${channel.name}  [${low.toPrecision(3)}, ${high.toPrecision(3)}]`;
    row.append(title, plotSide(left, "left", low, high), plotSide(right, "right", low, high));
    plots.append(row);
  }
}

// Moves the playhead of both segments together; the segments loop.
function animate(now) {
  if (state.steps !== null && state.query !== null) {
    const period = state.steps.left.step_period_secs > 0 ? state.steps.left.step_period_secs : DEFAULT_STEP_SECS;
    const length = state.query.left.length;
    const step = Math.floor((now - state.playStart) / 1000 / period) % length;
    for (const { cursor, length: count } of state.cursors) {
      const x = (Math.min(step, count - 1) / Math.max(1, count - 1)) * PLOT_WIDTH;
      cursor.setAttribute("x1", x.toFixed(1));
      cursor.setAttribute("x2", x.toFixed(1));
    }
    $("playhead").textContent = `step ${step + 1} / ${length}`;
    showFrames(step);
  }
  requestAnimationFrame(animate);
}

// ---- Answers ----------------------------------------------------------------------------

// A focused button would also take the next space or Enter press as a click.
function releaseFocus() {
  if (document.activeElement instanceof HTMLButtonElement) document.activeElement.blur();
}

async function submit(answer) {
  releaseFocus();
  if (!operatorReady() || state.query === null || state.busy) return;
  state.busy = true;
  setButtonsEnabled();
  const query = state.query;
  const seconds = (performance.now() - state.shownAt) / 1000;
  const result = await api("/api/answer", {
    method: "POST",
    body: { operator: state.operator, query_id: query.id, answer, response_time_sec: seconds },
  });
  state.busy = false;
  if (result.ok) {
    setMessage(`Stored: ${answer.replace("_", " ")} for query ${query.id}.`, "info");
    state.query = null;
    await loadNext();
  } else {
    setMessage(result.body.message || `Answer failed (HTTP ${result.status}).`);
    if (["expired", "duplicate", "unknown_query", "leased"].includes(result.body.error)) {
      state.query = null;
      await loadNext();
    }
  }
  setButtonsEnabled();
  refreshStatus();
}

async function undo() {
  releaseFocus();
  if (!operatorReady() || state.busy) return;
  state.busy = true;
  setButtonsEnabled();
  const result = await api("/api/undo", { method: "POST", body: { operator: state.operator } });
  state.busy = false;
  if (result.ok) {
    const undone = result.body.undone;
    setMessage(`Undone: ${undone.answer.replace("_", " ")} for query ${undone.query_id}.`, "info");
    await showQuery(result.body.query);
  } else {
    setMessage(result.body.message || `Undo failed (HTTP ${result.status}).`);
  }
  setButtonsEnabled();
  refreshStatus();
}

function onKey(event) {
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
  if (event.altKey || event.metaKey) return;
  const key = event.key;
  if (event.ctrlKey) {
    if (key === "z" || key === "Z") {
      event.preventDefault();
      undo();
    }
    return;
  }
  const actions = {
    ArrowLeft: () => submit("left"),
    a: () => submit("left"),
    ArrowRight: () => submit("right"),
    d: () => submit("right"),
    ArrowDown: () => submit("cant_tell"),
    s: () => submit("cant_tell"),
    c: () => submit("cant_tell"),
    " ": () => submit("skip"),
    n: () => submit("skip"),
    u: undo,
  };
  const action = actions[key.length === 1 ? key.toLowerCase() : key];
  if (action) {
    event.preventDefault();
    action();
  }
}

// ---- Status panel -----------------------------------------------------------------------

function addEntry(list, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  if (value instanceof Node) dd.append(value);
  else dd.textContent = String(value);
  list.append(dt, dd);
}

function formatTime(unixSecs) {
  return new Date(unixSecs * 1000).toLocaleTimeString();
}

async function refreshStatus() {
  const result = await api("/api/status");
  if (!result.ok) return;
  const status = result.body;
  const list = $("status-list");
  list.replaceChildren();
  addEntry(list, "Dataset", `${status.dataset.name} (${status.dataset.id})`);
  addEntry(list, "Open queries", status.open_queries);
  if (status.round !== null) {
    addEntry(list, "This round", `${status.round.answered} answered, ${status.round.open} open`);
  }
  const answers = status.answers;
  addEntry(list, "Answers stored", answers.stored_total);
  addEntry(list, "Since training", answers.since_training);
  addEntry(
    list,
    "Until retraining",
    answers.until_retraining === null ? "manual (retraining on request)" : answers.until_retraining,
  );
  const training = status.training;
  if (training.state === "running") {
    const bar = document.createElement("progress");
    bar.className = "progress";
    bar.max = 1;
    bar.value = training.progress;
    const wrap = document.createElement("span");
    wrap.append(document.createTextNode(`run ${training.run_id}, ${training.stage} `), bar);
    addEntry(list, "Training", wrap);
  } else if (training.state === "succeeded") {
    addEntry(list, "Training", `run ${training.run_id} installed ${training.version}`);
  } else if (training.state === "failed") {
    addEntry(list, "Training", `run ${training.run_id} failed: ${training.message}`);
  } else {
    addEntry(list, "Training", "idle");
  }
  if (status.last_rejection) addEntry(list, "Last rejected set", status.last_rejection);

  const model = $("model");
  model.replaceChildren();
  if (status.model.version === null) {
    addEntry(model, "Version", "none deployed");
  } else {
    addEntry(model, "Version", status.model.version);
    if (status.model.previous) addEntry(model, "Previous", status.model.previous);
    if (status.model.error) addEntry(model, "Manifest", status.model.error);
    if (status.model.answers_used !== undefined) addEntry(model, "Answers used", status.model.answers_used);
    for (const [name, value] of Object.entries(status.model.metrics || {})) {
      addEntry(model, name, typeof value === "number" ? value.toPrecision(4) : value);
    }
  }

  const operators = $("operators");
  operators.replaceChildren();
  for (const entry of status.operators) {
    const block = document.createElement("div");
    block.className = "operator-entry";
    const name = document.createElement("div");
    name.className = "operator-name";
    name.textContent = `${entry.operator} · ${entry.answers} answers · last ${formatTime(entry.last_answered_at_unix_secs)}`;
    const recent = document.createElement("div");
    recent.className = "operator-recent";
    recent.textContent = entry.recent.map((answer) => `#${answer.query_id} ${answer.answer}`).join(", ");
    block.append(name, recent);
    operators.append(block);
  }
}

// ---- Live updates -----------------------------------------------------------------------

function connectEvents() {
  const events = new EventSource("/api/events");
  const connection = $("connection");
  events.addEventListener("open", () => {
    connection.textContent = "live";
    connection.className = "connection live";
    refreshStatus();
    if (state.query === null) loadNext();
  });
  events.addEventListener("error", () => {
    connection.textContent = "reconnecting…";
    connection.className = "connection";
  });
  events.addEventListener("queries", () => {
    if (state.query === null) loadNext();
    refreshStatus();
  });
  events.addEventListener("answers", (event) => {
    const data = JSON.parse(event.data);
    refreshStatus();
    const other = data.operator !== undefined && data.operator !== state.operator;
    if (state.query !== null && data.query_id === state.query.id && other && !data.undone) {
      setMessage(`Query ${data.query_id} was answered by ${data.operator}.`, "info");
      state.query = null;
      loadNext();
    }
  });
  for (const name of ["training", "model", "resync"]) {
    events.addEventListener(name, refreshStatus);
  }
}

// ---- Start ------------------------------------------------------------------------------

async function start() {
  const session = await api("/api/session");
  state.session = session.ok ? session.body : { auth_required: false, authenticated: true, lease_secs: 60 };
  $("login").hidden = !state.session.auth_required || state.session.authenticated;
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await api("/api/login", { method: "POST", body: { token: $("token").value } });
    if (result.ok) {
      $("login").hidden = true;
      $("token").value = "";
      setMessage("Logged in.", "info");
      loadNext();
    } else {
      setMessage(result.body.message || "Login failed.");
    }
  });

  const input = $("operator");
  input.value = localStorage.getItem("clarify.operator") || "";
  state.operator = input.value.trim();
  input.addEventListener("change", () => {
    state.operator = input.value.trim();
    localStorage.setItem("clarify.operator", state.operator);
    setMessage("", "info");
    state.query = null;
    loadNext();
  });

  $("answer-left").addEventListener("click", () => submit("left"));
  $("answer-right").addEventListener("click", () => submit("right"));
  $("answer-cant-tell").addEventListener("click", () => submit("cant_tell"));
  $("answer-skip").addEventListener("click", () => submit("skip"));
  $("undo").addEventListener("click", undo);
  document.addEventListener("keydown", onKey);

  setButtonsEnabled();
  connectEvents();
  requestAnimationFrame(animate);
  await refreshStatus();
  await loadNext();
}

start();
