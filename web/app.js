// The demo page: a latent pad, seeded samples, an interpolation and a drawing canvas on one bundle.
// Everything runs through vae-digits.js; window.vaeDigits exposes it to tests and benchmarks.
import { Generator, PIXELS, VaeDigitsError, readDigit, toGreyLevels } from "./vae-digits.js";

const $ = (id) => document.getElementById(id);
const SIDE = 28;
const COLUMNS = 8; // samples per row
const LABEL_COLUMNS = 5; // a row of ten labels would not fit beside the pad
const INTERP_STEPS = 10;
const INTERP_PERIOD_MS = 3000;
const BACKGROUND_CELLS = 11; // the pad's backdrop: an 11 x 11 map of decoded digits
const BRUSH = 20; // pixels on the 280 x 280 drawing canvas: MNIST's stroke once scaled to 20 x 20

const state = {
  generator: null,
  label: 0, // the pad's label (index)
  z: null, // the pad's full latent (Float32Array)
  dims: [0, 1], // the latent dimensions the pad moves
  range: 3, // the pad spans [-range, range] on both axes
  interp: { a: null, b: null, playing: false, startedAt: 0 },
  drawn: null, // the last drawing: { pixels, label, zMean }
};
const timings = {};

window.vaeDigits = { state, timings, ready: main() };

async function main() {
  try {
    // A thread per core unless ?threads=N: measured on an idle 2-core machine (README), two threads
    // made batches 1.7x and pad updates 1.4x faster than one; on a busy machine one may do better.
    const generator = await Generator.load(chosenBundle(), { threads: urlNumber("threads", 0) });
    state.generator = generator;
    state.z = centre(generator, state.label);
    state.range = padRange(generator);
    Object.assign(window.vaeDigits, testHooks(generator));
    setUpPage(generator);
    await renderPad();
    await Promise.all([renderPadBackground(), renderSamples(), renderInterpolationStrip()]);
    document.body.dataset.status = "ready";
  } catch (error) {
    showError(error);
  }
}

// ---- which bundle ----

function chosenBundle() {
  const config = JSON.parse($("site-config").textContent);
  const asked = new URLSearchParams(location.search).get("bundle");
  const name = asked ?? config.bundles[0];
  if (!name) throw new VaeDigitsError("this site has no bundle: build it with `python web/site.py build`");
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith(".")) {
    throw new VaeDigitsError(`?bundle=${name} is not a bundle name of this site`);
  }
  fillSelect($("bundle-select"), [...new Set([...config.bundles, name])], (n) => n, name);
  $("bundle-select").addEventListener("change", (event) => {
    location.search = `?bundle=${encodeURIComponent(event.target.value)}`;
  });
  return `bundles/${name}/`;
}

function urlNumber(key, fallback) {
  const value = new URLSearchParams(location.search).get(key);
  return value === null ? fallback : Number(value);
}

// ---- the page around the loaded bundle ----

function setUpPage(g) {
  document.body.classList.add(g.conditional ? "cvae" : "vae");
  $("loading").hidden = true;
  $("app").hidden = false;
  showInfo(g);
  setUpPad(g);
  setUpSamples(g);
  setUpInterpolation(g);
  setUpDrawing(g);
  for (const canvas of document.querySelectorAll("canvas.digit")) clearDigits(canvas);
}

function showInfo(g) {
  const info = g.info;
  const validation = info.training?.validation;
  const megabytes = Object.values(g.files).reduce((sum, entry) => sum + entry.size, 0) / 1e6;
  const rows = [
    ["model", g.conditional ? `conditional VAE, ${info.labels.length} labels` : "VAE (no labels)"],
    ["latent size", String(g.latentDim)],
    ["sampling", g.prior ? `Gaussian mixture per label (prior.json)` : "N(0, I)"],
    ["default temperature", info.default_temperature.toFixed(2)],
    ["training", info.training?.epochs ? plural(info.training.epochs, "epoch") : "not recorded"],
  ];
  if (validation) {
    const [total, reconstruction, kl] = [
      validation.total_loss,
      validation.reconstruction_loss,
      validation.kl_loss,
    ];
    rows.push([
      "validation loss",
      `${total.toFixed(2)} = ${reconstruction.toFixed(2)} + KL ${kl.toFixed(2)}`,
    ]);
  }
  rows.push(["run", info.run_id ?? "?"], ["downloaded", `${megabytes.toFixed(2)} MB`]);
  $("info").replaceChildren(...rows.map(([term, value]) => definition(term, value)));
  const threads = Generator.threads;
  const isolation = crossOriginIsolated ? "cross-origin isolated" : "not cross-origin isolated";
  const more = crossOriginIsolated ? "; ?threads=N to choose" : "";
  $("footer").textContent =
    `onnxruntime-web ${Generator.runtimeVersion} on ${plural(threads, "WebAssembly thread")} ` +
    `(${isolation}${more}). ` +
    "Every file was checked against the bundle's manifest (sha256 and size) before use.";
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function definition(term, value) {
  const row = document.createElement("div");
  const [dt, dd] = [document.createElement("dt"), document.createElement("dd")];
  dt.textContent = term;
  dd.textContent = value;
  row.append(dt, dd);
  return row;
}

function fillSelect(select, values, text, selected) {
  select.replaceChildren(
    ...values.map((value) => {
      const option = new Option(text(value), String(value));
      option.selected = value === selected;
      return option;
    }),
  );
}

function labelIndices(g) {
  return Array.from(g.labels.keys());
}

// ---- drawing digits ----

/** Draw grey-level digits (N x 784) as tiles, `columns` a row, one pixel of gap; crisp when scaled. */
function drawDigits(canvas, levels, columns) {
  const count = levels.length / PIXELS;
  const rows = Math.ceil(count / columns);
  resizeCanvas(canvas, columns * (SIDE + 1) - 1, rows * (SIDE + 1) - 1);
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const tile = context.createImageData(SIDE, SIDE);
  for (let n = 0; n < count; n++) {
    paintTile(tile, levels, n);
    context.putImageData(tile, (n % columns) * (SIDE + 1), Math.floor(n / columns) * (SIDE + 1));
  }
  canvas.dataset.digits = String(count);
}

/** Digit `n` of `levels` (N x 784 grey levels) into a 28 x 28 ImageData: grey on black, or as white
 * ink whose opacity is the grey level (`asInk`, to lay over other drawing). */
function paintTile(tile, levels, n, asInk = false) {
  const { data } = tile;
  for (let p = 0; p < PIXELS; p++) {
    const grey = levels[n * PIXELS + p];
    data[p * 4] = data[p * 4 + 1] = data[p * 4 + 2] = asInk ? 255 : grey;
    data[p * 4 + 3] = asInk ? grey : 255;
  }
}

function clearDigits(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.digits = "0";
  resizeCanvas(canvas, canvas.width, canvas.height);
}

function resizeCanvas(canvas, width, height) {
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  canvas.style.width = `${width * Number(canvas.dataset.scale || 1)}px`; // the height follows (CSS auto)
}

/** The tiles of a digit canvas as grey levels, read back from its pixels (for tests). */
function readDigits(canvas) {
  const count = Number(canvas.dataset.digits || 0);
  const columns = Math.max(1, Math.round((canvas.width + 1) / (SIDE + 1)));
  const context = canvas.getContext("2d");
  return Array.from({ length: count }, (_, n) => {
    const { data } = context.getImageData(
      (n % columns) * (SIDE + 1),
      Math.floor(n / columns) * (SIDE + 1),
      SIDE,
      SIDE,
    );
    return Array.from({ length: PIXELS }, (_, p) => data[p * 4]);
  });
}

/** Runs `work` with the latest arguments, never two at once: fast input coalesces, nothing queues up.
 * `work` gets, after its arguments, a function saying whether newer arguments are waiting. */
function latestOnly(work) {
  let pending = null;
  let running = null;
  const superseded = () => pending !== null;
  return (...args) => {
    pending = args;
    running ??= (async () => {
      while (pending) {
        const next = pending;
        pending = null;
        await work(...next, superseded);
      }
      running = null;
    })().catch(showError);
    return running;
  };
}

// ---- the latent pad ----

function padRange(g) {
  if (!g.prior) return 3;
  // wide enough for every label's prior: its component means plus two standard deviations
  let reach = 3;
  for (const { means, cholesky } of g.prior.mixtures) {
    const d = g.latentDim;
    for (let k = 0; k < means.length / d; k++) {
      for (let i = 0; i < d; i++) {
        let variance = 0;
        for (let j = 0; j <= i; j++) variance += cholesky[(k * d + i) * d + j] ** 2;
        reach = Math.max(reach, Math.abs(means[k * d + i]) + 2 * Math.sqrt(variance));
      }
    }
  }
  return Math.ceil(reach);
}

function setUpPad(g) {
  const picker = $("label-picker");
  picker.hidden = !g.conditional;
  $("pad-labels-block").hidden = !g.conditional;
  picker.replaceChildren(
    ...labelIndices(g).map((index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = g.labels[index];
      button.dataset.label = String(index);
      button.setAttribute("aria-pressed", String(index === state.label));
      button.addEventListener("click", () => chooseLabel(index));
      return button;
    }),
  );
  setUpDims(g);
  const pad = $("pad");
  const ratio = window.devicePixelRatio || 1;
  pad.width = pad.height = Math.round(300 * ratio);
  const move = latestOnly(renderPad);
  const follow = (event) => {
    setPadPoint(padToLatent(event));
    move();
  };
  pad.addEventListener("pointerdown", (event) => {
    pad.setPointerCapture(event.pointerId);
    follow(event);
  });
  pad.addEventListener("pointermove", (event) => pad.hasPointerCapture(event.pointerId) && follow(event));
  pad.addEventListener("keydown", (event) => nudgePad(event, move));
  $("pad-random").addEventListener("click", () => {
    state.z = g.sample(g.conditional ? state.label : null, { seed: null }).z;
    refreshPad();
  });
  $("pad-reset").textContent = g.prior ? "Centre of the label" : "z = 0";
  $("pad-reset").addEventListener("click", () => {
    state.z = centre(g, state.label);
    refreshPad();
  });
}

/** Where the pad starts: the mean of the label's prior (the weighted mean of its mixture), else 0. */
function centre(g, label) {
  const z = new Float32Array(g.latentDim);
  if (!g.prior) return z;
  const { cumulative, means } = g.prior.mixtures[g.conditional ? label : 0];
  cumulative.forEach((upTo, k) => {
    const weight = upTo - (k ? cumulative[k - 1] : 0);
    for (let i = 0; i < z.length; i++) z[i] += weight * means[k * z.length + i];
  });
  return z;
}

function setUpDims(g) {
  $("dims").hidden = $("dims-note").hidden = g.latentDim <= 2;
  const dims = Array.from({ length: g.latentDim }, (_, i) => i);
  fillSelect($("dim-x"), dims, String, state.dims[0]);
  fillSelect($("dim-y"), dims, String, state.dims[1]);
  for (const [axis, id] of [
    [0, "dim-x"],
    [1, "dim-y"],
  ]) {
    $(id).addEventListener("change", (event) => {
      const chosen = Number(event.target.value);
      if (chosen === state.dims[1 - axis]) state.dims[1 - axis] = state.dims[axis]; // a swap
      state.dims[axis] = chosen;
      fillSelect($("dim-x"), dims, String, state.dims[0]);
      fillSelect($("dim-y"), dims, String, state.dims[1]);
      refreshPad();
    });
  }
}

/** With a prior the pad (and A and B) jump to where the new label's digits live; with N(0, I) they keep
 * their z, so the same handwriting shows in the new label. */
function chooseLabel(index, z = null) {
  const g = state.generator;
  state.label = index;
  state.z = z ?? (g.prior ? centre(g, index) : state.z);
  if (g.prior) pickInterpolationEnds(g);
  for (const button of $("label-picker").children) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.label) === index));
  }
  refreshPad();
  renderInterpolationStrip().catch(showError);
}

const refreshPad = latestOnly(async () => {
  await renderPad();
  await renderPadBackground();
});

function padToLatent(event) {
  const box = $("pad").getBoundingClientRect();
  const fx = (event.clientX - box.left) / box.width;
  const fy = (event.clientY - box.top) / box.height;
  const clamp = (value) => Math.min(1, Math.max(0, value));
  return [(clamp(fx) * 2 - 1) * state.range, (1 - clamp(fy) * 2) * state.range];
}

function setPadPoint([x, y]) {
  state.z[state.dims[0]] = x;
  state.z[state.dims[1]] = y;
}

function nudgePad(event, move) {
  const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] }[event.key];
  if (!steps) return;
  event.preventDefault();
  const step = state.range / 30;
  setPadPoint([state.z[state.dims[0]] + steps[0] * step, state.z[state.dims[1]] + steps[1] * step]);
  move();
}

/** One pad update: decode the pad's z and draw the digit; then, unless the drag has already moved on,
 * the same z with every label (a CVAE), which costs ten digits and so waits for a pause. */
async function renderPad(superseded = () => false) {
  const g = state.generator;
  const z = Float32Array.from(state.z);
  drawDigits($("pad-digit"), toGreyLevels(await g.decode(z, g.conditional ? state.label : null)), 1);
  timings.firstDigit ??= performance.now();
  drawPad();
  const shown = g.latentDim > 2 ? state.dims : [0, 1];
  $("z-readout").textContent = shown.map((i) => `z[${i}] = ${z[i].toFixed(2)}`).join(",  ");
  if (g.conditional && !superseded()) await renderLabelStrip(z);
}

async function renderLabelStrip(z) {
  drawDigits($("pad-labels"), await everyLabel(state.generator, z), LABEL_COLUMNS);
}

/** One latent decoded with every label of a CVAE (a plain VAE: once), as grey levels. */
async function everyLabel(g, z) {
  const labels = g.conditional ? labelIndices(g) : null;
  const rows = labels ? labels.map(() => Array.from(z)) : z;
  return toGreyLevels(await g.decode(rows, labels));
}

let padBackground = null; // a canvas of decoded digits over the pad's two dimensions

async function renderPadBackground() {
  const g = state.generator;
  const cells = BACKGROUND_CELLS;
  const rows = [];
  for (let row = 0; row < cells; row++) {
    for (let column = 0; column < cells; column++) {
      const z = Array.from(state.z);
      z[state.dims[0]] = (((column + 0.5) / cells) * 2 - 1) * state.range;
      z[state.dims[1]] = (1 - ((row + 0.5) / cells) * 2) * state.range;
      rows.push(z);
    }
  }
  const levels = toGreyLevels(await g.decode(rows, g.conditional ? state.label : null));
  padBackground ??= document.createElement("canvas");
  padBackground.width = padBackground.height = cells * SIDE;
  const context = padBackground.getContext("2d");
  const tile = context.createImageData(SIDE, SIDE);
  for (let n = 0; n < cells * cells; n++) {
    paintTile(tile, levels, n, true);
    context.putImageData(tile, (n % cells) * SIDE, Math.floor(n / cells) * SIDE);
  }
  drawPad();
}

function drawPad() {
  const pad = $("pad");
  const context = pad.getContext("2d");
  const size = pad.width;
  context.fillStyle = "#101114";
  context.fillRect(0, 0, size, size);
  if (padBackground) {
    context.imageSmoothingEnabled = false;
    context.globalAlpha = 0.28;
    context.drawImage(padBackground, 0, 0, size, size);
    context.globalAlpha = 1;
  }
  context.strokeStyle = "rgb(255 255 255 / 18%)";
  context.lineWidth = Math.max(1, size / 300);
  context.beginPath();
  context.moveTo(size / 2, 0);
  context.lineTo(size / 2, size);
  context.moveTo(0, size / 2);
  context.lineTo(size, size / 2);
  context.stroke();
  for (const [name, z] of [
    ["A", state.interp.a],
    ["B", state.interp.b],
  ]) {
    if (z) marker(context, latentToPad(z, size), name);
  }
  const [x, y] = latentToPad(state.z, size);
  context.fillStyle = "#ff7a3d";
  context.strokeStyle = "#fff";
  context.lineWidth = size / 150;
  context.beginPath();
  context.arc(x, y, size / 38, 0, 2 * Math.PI);
  context.fill();
  context.stroke();
}

function latentToPad(z, size) {
  const toPixel = (value) => ((value / state.range + 1) / 2) * size;
  return [toPixel(z[state.dims[0]]), size - toPixel(z[state.dims[1]])];
}

function marker(context, [x, y], name) {
  context.fillStyle = "rgb(255 255 255 / 85%)";
  context.font = `600 ${Math.round(context.canvas.width / 22)}px system-ui, sans-serif`;
  context.textAlign = "center";
  context.textBaseline = "middle";
  context.fillText(name, x, y);
}

// ---- samples ----

function setUpSamples(g) {
  const every = "every";
  fillSelect(
    $("samples-label"),
    [every, ...labelIndices(g)],
    (v) => (v === every ? "every label" : g.labels[v]),
    every,
  );
  const temperature = $("samples-temperature");
  temperature.value = String(g.info.default_temperature);
  const render = latestOnly(renderSamples);
  for (const id of ["samples-label", "samples-seed", "samples-temperature"])
    $(id).addEventListener("input", () => render());
  $("samples-new-seed").addEventListener("click", () => {
    $("samples-seed").value = String(Math.floor(Math.random() * 1e6));
    render();
  });
}

async function renderSamples() {
  const g = state.generator;
  const choice = $("samples-label").value;
  const temperature = Number($("samples-temperature").value);
  $("samples-temperature-value").textContent = temperature.toFixed(2);
  const seed = Math.max(0, Math.floor(Number($("samples-seed").value) || 0));
  const labels = !g.conditional ? null : choice === "every" ? null : Number(choice);
  const count = !g.conditional || choice !== "every" ? 5 * COLUMNS : COLUMNS;
  drawDigits($("samples"), await g.generate(labels, { count, seed, temperature }), COLUMNS);
}

// ---- interpolation ----

function setUpInterpolation(g) {
  pickInterpolationEnds(g);
  for (const [id, end] of [
    ["interp-a", "a"],
    ["interp-b", "b"],
  ]) {
    $(id).addEventListener("click", () => {
      state.interp[end] = Float32Array.from(state.z);
      drawPad();
      renderInterpolationStrip().catch(showError);
    });
  }
  $("interp-play").addEventListener("click", () => togglePlay());
}

/** A and B: the two farthest apart of 16 latents sampled for the pad's label. */
function pickInterpolationEnds(g) {
  const { z } = g.sample(g.conditional ? state.label : null, { count: 16, seed: 7 });
  [state.interp.a, state.interp.b] = farthestPair(g, z);
}

/** Of N latents (flat), the two farthest apart: a start and an end that look different. */
function farthestPair(g, z) {
  const d = g.latentDim;
  const rows = Array.from({ length: z.length / d }, (_, i) => z.slice(i * d, (i + 1) * d));
  let best = [rows[0], rows[1]];
  let bestDistance = -1;
  for (const [i, a] of rows.entries()) {
    for (const b of rows.slice(i + 1)) {
      const distance = a.reduce((sum, value, k) => sum + (value - b[k]) ** 2, 0);
      if (distance > bestDistance) [best, bestDistance] = [[a, b], distance];
    }
  }
  return best;
}

function interpolationPoints(steps) {
  const { a, b } = state.interp;
  return steps.map((t) => Array.from(a, (value, i) => value + t * (b[i] - value)));
}

async function renderInterpolationStrip() {
  const g = state.generator;
  const steps = Array.from({ length: INTERP_STEPS }, (_, i) => i / (INTERP_STEPS - 1));
  const images = await g.decode(interpolationPoints(steps), g.conditional ? state.label : null);
  const levels = toGreyLevels(images);
  drawDigits($("interp-strip"), levels, INTERP_STEPS);
  if (!state.interp.playing) drawDigits($("interp-digit"), levels.subarray(0, PIXELS), 1);
}

const renderInterpolationFrame = latestOnly(async (t) => {
  const g = state.generator;
  const images = await g.decode(interpolationPoints([t]), g.conditional ? state.label : null);
  drawDigits($("interp-digit"), toGreyLevels(images), 1);
});

function togglePlay() {
  const interp = state.interp;
  interp.playing = !interp.playing;
  $("interp-play").textContent = interp.playing ? "Pause" : "Play";
  $("interp-play").setAttribute("aria-pressed", String(interp.playing));
  interp.startedAt = performance.now();
  const frame = (now) => {
    if (!interp.playing) return;
    const phase = ((now - interp.startedAt) % INTERP_PERIOD_MS) / INTERP_PERIOD_MS;
    renderInterpolationFrame((1 - Math.cos(2 * Math.PI * phase)) / 2); // A -> B -> A, eased
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

// ---- drawing ----

function setUpDrawing(g) {
  fillSelect($("draw-label"), labelIndices(g), (v) => g.labels[v], 0);
  if (!g.conditional) $("restyled").dataset.scale = $("drawn").dataset.scale; // one digit: as large
  const canvas = $("draw");
  const context = canvas.getContext("2d", { willReadFrequently: true }); // read back after every stroke
  clearDrawing(context);
  const restyle = latestOnly(renderRestyle);
  let last = null;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) / box.width) * canvas.width,
      ((event.clientY - box.top) / box.height) * canvas.height,
    ];
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    stroke(context, last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = point(event);
    stroke(context, last, next);
    last = next;
    restyle();
  });
  const finish = () => {
    if (last) restyle();
    last = null;
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  $("draw-label").addEventListener("input", () => restyle());
  $("draw-clear").addEventListener("click", () => {
    clearDrawing(context);
    state.drawn = null;
    $("draw-to-pad").disabled = true;
    clearDigits($("drawn"));
    clearDigits($("restyled"));
  });
  $("draw-to-pad").addEventListener("click", () => {
    const z = Float32Array.from(state.drawn.zMean);
    if (g.conditional) {
      chooseLabel(state.drawn.label, z);
    } else {
      state.z = z;
      refreshPad();
    }
  });
}

function clearDrawing(context) {
  context.fillStyle = "#000";
  context.fillRect(0, 0, context.canvas.width, context.canvas.height);
}

function stroke(context, from, to) {
  context.strokeStyle = "#fff";
  context.lineWidth = BRUSH;
  context.lineCap = context.lineJoin = "round";
  context.beginPath();
  context.moveTo(...from);
  context.lineTo(...to);
  context.stroke();
}

/** Encode the drawing as MNIST would show it, decode its z with every label (the VAE: once). */
async function renderRestyle() {
  const g = state.generator;
  const canvas = $("draw");
  const pixels = readDigit(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height));
  if (!pixels) return;
  const label = g.conditional ? Number($("draw-label").value) : null;
  const { zMean } = await g.encode(pixels, label);
  drawDigits($("drawn"), pixels, 1);
  drawDigits($("restyled"), await everyLabel(g, zMean), g.conditional ? LABEL_COLUMNS : 1);
  state.drawn = { pixels, label, zMean };
  $("draw-to-pad").disabled = false;
}

// ---- errors ----

function showError(error) {
  console.warn(error); // the panel says it; the console keeps the stack for whoever debugs
  const known = error instanceof VaeDigitsError;
  $("error-message").textContent = known ? `${error.name}: ${error.message}` : `Unexpected error: ${error}`;
  state.interp.playing = false;
  $("loading").hidden = true;
  $("app").hidden = true;
  $("error").hidden = false;
  document.body.dataset.status = "error";
}

// ---- hooks for tests and benchmarks ----

function testHooks(g) {
  return {
    generator: g,
    decode: async (z, labels) => Array.from(await g.decode(z, labels)),
    decodeLevels: async (z, labels) => Array.from(toGreyLevels(await g.decode(z, labels))),
    encode: async (images, labels) => {
      const { zMean, zLogVar } = await g.encode(Uint8Array.from(images), labels);
      return { zMean: Array.from(zMean), zLogVar: Array.from(zLogVar) };
    },
    generate: async (labels, options) => Array.from(await g.generate(labels, options)),
    sample: (labels, options) => {
      const { z, labelIds } = g.sample(labels, options);
      return { z: Array.from(z), labelIds: labelIds && Array.from(labelIds) };
    },
    readDigits: (id) => readDigits($(id)),
    padPoint: () => latentToPad(state.z, 1),
    /** One pad update as a drag makes it, in milliseconds: [the digit decoded and drawn, with the
     * ten-label strip too]. */
    padUpdate: async (x, y) => {
      const started = performance.now();
      setPadPoint([x, y]);
      await renderPad(() => true);
      const digit = performance.now() - started;
      if (g.conditional) await renderLabelStrip(Float32Array.from(state.z));
      return [digit, performance.now() - started];
    },
    threads: () => Generator.threads,
  };
}
