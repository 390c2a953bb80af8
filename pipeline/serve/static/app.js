// ferflow serve's page: the camera's frames go to the server over a WebSocket, the faces and
// probabilities it answers are drawn over the video; a dropped photo goes to POST /api/predict.
// The server owns the model; this page only captures and draws.

// Frames are sent this wide: the width `ferflow live` searches for faces, which keeps the
// detector cheap (its cost grows with the pixels) and the JPEGs small to send and decode.
const FRAME_WIDTH = 320;
const JPEG_QUALITY = 0.85;
// Frames go out at the camera's pace whatever the server's speed: it analyses the newest one
// each time it is free and drops the rest, so an answer is never more than one frame older
// than the analysis itself. Only a full send buffer (a slow network) holds frames back.
const SEND_FPS = 30;
const RETRY_MS = 2000;
// The server closes a stream over its cap with this code ("try again later") and a reason.
const STREAMS_FULL = 1013;
const BUSY_RETRY_MS = 10000;

const $ = (id) => document.getElementById(id);
const status = $("status");
const video = $("camera");
const photo = $("photo");
const boxes = $("boxes");
const faces = $("faces");

const state = {
  labels: [],
  ws: null,
  mode: "camera", // or "photo"
  camera: "starting", // "on", "denied", "none"
  next: 0, // index of the next frame sent; the server counts the same way
  answered: -1, // highest frame index answered (analysed or dropped before it)
  sent: new Map(), // frame index -> JPEG blob, until answered
  encoding: false, // a frame is being encoded to JPEG
  lastSent: 0, // when the last frame went out (performance.now())
  analysed: null, // {frame, blob, result}: the frame whose faces are on screen
  times: [], // arrival times of recent results, for frames/s
};

function setStatus(kind, text) {
  status.dataset.state = kind;
  status.textContent = text;
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

// ---- the model ---------------------------------------------------------------------------

async function loadModel() {
  for (;;) {
    try {
      const response = await fetch("/api/model");
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const model = await response.json();
      state.labels = model.labels;
      const acc = model.accuracy;
      const on = [acc?.images, acc?.split].filter((x) => x !== null && x !== undefined).join(" ");
      $("model").textContent = acc
        ? `${model.name}: ${percent(acc.value)} accuracy${on ? ` on ${on} faces` : ""} (${acc.source})`
        : `${model.name} (no recorded accuracy)`;
      return;
    } catch {
      setStatus("unreachable", "Server unreachable: is `ferflow serve` still running? Retrying…");
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}

// ---- the camera --------------------------------------------------------------------------

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    state.camera = "none";
    setStatus("no-camera", "No camera access here: browsers allow cameras only on https:// or " +
      "localhost pages. Drop a photo instead.");
    return;
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
    await video.play();
    state.camera = "on";
  } catch (error) {
    const denied = error.name === "NotAllowedError" || error.name === "SecurityError";
    state.camera = denied ? "denied" : "none";
    if (denied) {
      setStatus("denied", "Camera permission denied. Allow the camera for this site in the " +
        "browser's settings and reload, or drop a photo.");
    } else {
      setStatus("no-camera", `No camera found (${error.name}). Connect one and reload, or ` +
        "drop a photo.");
    }
  }
}

function showCameraState() {
  if (state.mode !== "camera") return;
  if (state.ws?.readyState !== WebSocket.OPEN) return;
  if (state.camera === "on") setStatus("live", "Live: analysing your camera on the server.");
}

// ---- the stream ---------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  state.ws = ws;
  ws.onopen = () => {
    state.next = 0;
    state.answered = -1;
    state.sent.clear();
    showCameraState();
  };
  ws.onmessage = (event) => onAnswer(JSON.parse(event.data));
  ws.onclose = (event) => {
    state.ws = null;
    if (event.code === STREAMS_FULL) {
      setStatus("busy", `The server refused this stream (${event.reason}). Retrying in 10 s…`);
      setTimeout(connect, BUSY_RETRY_MS);
      return;
    }
    setStatus("unreachable", "Server unreachable: is `ferflow serve` still running? Retrying…");
    setTimeout(connect, RETRY_MS);
  };
}

function onAnswer(message) {
  if (message.frame !== null && message.frame !== undefined) {
    state.answered = Math.max(state.answered, message.frame);
  }
  if (message.type === "error") {
    console.warn("ferflow:", message.error);
    if (message.frame === null) return;
  } else if (message.type === "result") {
    const blob = state.sent.get(message.frame);
    state.analysed = { frame: message.frame, blob, result: message };
    state.times.push(performance.now());
    if (state.mode === "camera") draw(message, video);
  }
  for (const index of state.sent.keys()) {
    if (index <= state.answered) state.sent.delete(index);
  }
}

function sendFrame() {
  const ws = state.ws;
  const now = performance.now();
  if (state.mode !== "camera" || state.camera !== "on" || ws?.readyState !== WebSocket.OPEN ||
      state.encoding || ws.bufferedAmount > 0 || now - state.lastSent < 1000 / SEND_FPS ||
      video.videoWidth === 0) {
    return;
  }
  state.lastSent = now;
  const canvas = sendFrame.canvas ?? (sendFrame.canvas = document.createElement("canvas"));
  const scale = Math.min(1, FRAME_WIDTH / video.videoWidth);
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  state.encoding = true;
  canvas.toBlob((blob) => {
    state.encoding = false;
    if (!blob || ws !== state.ws || ws.readyState !== WebSocket.OPEN) return;
    // Numbered when sent, as the server numbers what it receives.
    const index = state.next++;
    state.sent.set(index, blob);
    ws.send(blob);
  }, "image/jpeg", JPEG_QUALITY);
}

function tick() {
  sendFrame();
  // Frames/s over the answers of the last two seconds.
  const now = performance.now();
  while (state.times.length && state.times[0] < now - 2000) state.times.shift();
  const n = state.times.length;
  const span = n > 1 ? (state.times[n - 1] - state.times[0]) / 1000 : 0;
  $("fps").textContent = state.mode === "camera" && span > 0
    ? `${((n - 1) / span).toFixed(1)} frames/s analysed`
    : "– frames/s analysed";
  requestAnimationFrame(tick);
}

// ---- drawing ------------------------------------------------------------------------------

// As css_name() in app.py spells it, so the colours the server sends apply.
function labelClass(label) {
  return `label-${label.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

// Boxes over the media element (the video or the photo) and one card of bars per face.
function draw(result, media) {
  const scale = media.clientWidth / result.width;
  const found = result.records.filter((record) => record.faces > 0);
  boxes.replaceChildren(...found.map((record) => {
    const [x, y, w, h] = record.box;
    const box = document.createElement("div");
    box.className = `box ${labelClass(record.label)}${y * scale < 24 ? " inside" : ""}`;
    box.dataset.label = record.label;
    Object.assign(box.style, {
      left: `${x * scale}px`, top: `${y * scale}px`,
      width: `${w * scale}px`, height: `${h * scale}px`,
    });
    const tag = document.createElement("span");
    tag.textContent = `${record.face + 1}: ${record.label} ${Math.round(100 * record.score)}%`;
    box.append(tag);
    return box;
  }));
  if (found.length === 0) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No face found in this frame.";
    faces.replaceChildren(empty);
  } else {
    faces.replaceChildren(...found.map(faceCard));
  }
  document.body.dataset.frame = String(result.frame ?? "photo");
}

function faceCard(record) {
  const card = document.createElement("section");
  card.className = `face ${labelClass(record.label)}`;
  card.dataset.face = String(record.face);
  const title = document.createElement("h2");
  title.textContent = `Face ${record.face + 1}: ${record.label}`;
  card.append(title);
  for (const label of state.labels) {
    const p = record.probabilities[label];
    const row = document.createElement("div");
    row.className = `bar ${labelClass(label)}${label === record.label ? " top" : ""}`;
    row.dataset.label = label;
    row.dataset.value = String(p);
    row.innerHTML = '<span class="name"></span><span class="track"><span class="fill">' +
      '</span></span><span class="pct"></span>';
    row.querySelector(".name").textContent = label;
    row.querySelector(".fill").style.width = `${100 * p}%`;
    row.querySelector(".pct").textContent = percent(p);
    card.append(row);
  }
  return card;
}

// ---- photos -------------------------------------------------------------------------------

async function analysePhoto(file) {
  state.mode = "photo";
  video.hidden = true;
  photo.hidden = false;
  $("back").hidden = false;
  boxes.replaceChildren();
  faces.replaceChildren();
  setStatus("connecting", `Analysing ${file.name}…`);
  if (photo.src) URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(file);
  const form = new FormData();
  form.append("image", file, file.name);
  let response;
  try {
    response = await fetch("/api/predict", { method: "POST", body: form });
  } catch {
    setStatus("unreachable", "Server unreachable: is `ferflow serve` still running?");
    return;
  }
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    setStatus("error", `${file.name}: ${body.error}`);
    return;
  }
  await photo.decode().catch(() => {});
  draw(body, photo);
  const count = body.records.filter((record) => record.faces > 0).length;
  setStatus("photo", `${file.name}: ${count} face${count === 1 ? "" : "s"} found.`);
}

function backToCamera() {
  state.mode = "camera";
  video.hidden = false;
  photo.hidden = true;
  $("back").hidden = true;
  boxes.replaceChildren();
  faces.replaceChildren();
  if (state.camera === "on") showCameraState();
  else startCamera().then(showCameraState);
}

function setUpDrop() {
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer?.files?.[0];
    if (file) analysePhoto(file);
  });
  $("file").addEventListener("change", (event) => {
    const file = event.target.files?.[0];
    if (file) analysePhoto(file);
    event.target.value = "";
  });
  $("back").addEventListener("click", backToCamera);
}

// For tests and the curious: the frame whose faces are on screen, as the JPEG sent.
window.ferflow = {
  state,
  async analysedFrame() {
    const analysed = state.analysed; // taken now: a newer answer may land while we read
    if (!analysed?.blob) return null;
    const bytes = new Uint8Array(await analysed.blob.arrayBuffer());
    let text = "";
    for (const byte of bytes) text += String.fromCharCode(byte);
    return { frame: analysed.frame, jpeg: btoa(text), result: analysed.result };
  },
};

setUpDrop();
await loadModel();
setStatus("connecting", "Asking for the camera…");
await startCamera();
connect();
requestAnimationFrame(tick);
