// qkv explorer: asks the server (/api/..., /v1/completions) and draws what it answers. No
// libraries: the page is built into the qkv binary and works offline.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { attention: null, layer: 0, head: 0, query: null, key: null };

// --- talking to the server ---------------------------------------------------------------------
function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value;
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function call(path, body) {
  const response = await fetch(path, body === undefined ? { headers: headers() }
    : { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const answer = await response.json();
  if (response.status === 401) $("key-box").hidden = false;
  if (!response.ok) throw new Error(answer.error ? answer.error.message : response.statusText);
  return answer;
}

function checkpoint() { return $("checkpoint").value; }

// --- colours -----------------------------------------------------------------------------------
function shade(w) {  // weight in [0, 1] -> white..blue
  const c = Math.round(255 * (1 - Math.min(1, Math.max(0, w))));
  return `rgb(${c},${Math.round(c * 0.9 + 25 * (1 - w))},255)`;
}

// --- attention: the grid of every head ---------------------------------------------------------
function drawGrid(a) {
  const grid = $("grid");
  grid.innerHTML = "";
  grid.style.gridTemplateColumns = `4em repeat(${a.n_head}, auto)`;
  const T = a.tokens.length;
  const cell = Math.max(2, Math.floor(96 / T));
  for (let l = 0; l < a.n_layer; l++) {
    const label = document.createElement("span");
    label.className = "layer-label";
    label.textContent = `layer ${l + 1}`;
    grid.appendChild(label);
    for (let h = 0; h < a.n_head; h++) {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = T * cell;
      canvas.title = `layer ${l + 1}, head ${h + 1}`;
      canvas.dataset.layer = l;
      canvas.dataset.head = h;
      // The weights as drawn, for anyone (or any test) that wants the numbers behind the picture.
      canvas.dataset.weights = JSON.stringify(a.weights[l][h]);
      const g = canvas.getContext("2d");
      for (let i = 0; i < T; i++)
        for (let j = 0; j < T; j++) {
          g.fillStyle = shade(a.weights[l][h][i][j]);
          g.fillRect(j * cell, i * cell, cell, cell);
        }
      canvas.addEventListener("click", () => selectHead(l, h));
      grid.appendChild(canvas);
    }
  }
}

function selectHead(layer, head) {
  state.layer = layer;
  state.head = head;
  for (const c of $("grid").querySelectorAll("canvas"))
    c.classList.toggle("selected", +c.dataset.layer === layer && +c.dataset.head === head);
  $("head-name").textContent = `layer ${layer + 1}, head ${head + 1}`;
  drawHeadView();
  drawMatrix();
}

// --- one head: lines from each query token to its keys (as bertviz's head view) ---------------
function drawHeadView() {
  const a = state.attention, svg = $("head-view"), T = a.tokens.length, rowH = 18;
  const w = a.weights[state.layer][state.head];
  svg.setAttribute("height", T * rowH + 10);
  svg.innerHTML = "";
  const ns = "http://www.w3.org/2000/svg";
  const lines = [];
  for (let i = 0; i < T; i++)
    for (let j = 0; j <= i; j++) {
      const line = document.createElementNS(ns, "line");
      line.setAttribute("x1", 110); line.setAttribute("y1", i * rowH + 14);
      line.setAttribute("x2", 250); line.setAttribute("y2", j * rowH + 14);
      line.setAttribute("stroke", "#1a5fb4");
      line.setAttribute("stroke-width", 2);
      line.setAttribute("stroke-opacity", w[i][j]);
      line.dataset.query = i;
      svg.appendChild(line);
      lines.push(line);
    }
  const highlight = (q) => {
    for (const line of lines)
      line.style.display = q === null || +line.dataset.query === q ? "" : "none";
    for (const t of svg.querySelectorAll("text")) t.classList.toggle("hover", +t.dataset.q === q);
    for (const row of $("matrix").querySelectorAll("tr"))
      row.classList.toggle("hover", q !== null && +row.dataset.q === q);
  };
  a.labels.forEach((label, i) => {
    for (const [x, anchor, side] of [[100, "end", "q"], [260, "start", "k"]]) {
      const text = document.createElementNS(ns, "text");
      text.setAttribute("x", x); text.setAttribute("y", i * rowH + 18);
      text.setAttribute("text-anchor", anchor);
      text.textContent = label;
      if (side === "q") {
        text.dataset.q = i;
        text.addEventListener("mouseenter", () => highlight(i));
        text.addEventListener("mouseleave", () => highlight(null));
      }
      svg.appendChild(text);
    }
  });
}

// --- one head: the matrix, each cell clickable -------------------------------------------------
function drawMatrix() {
  const a = state.attention, table = $("matrix"), T = a.tokens.length;
  const w = a.weights[state.layer][state.head];
  table.innerHTML = "";
  const head = table.insertRow();
  head.appendChild(document.createElement("th"));
  for (const label of a.labels) {
    const th = document.createElement("th");
    th.textContent = label;
    head.appendChild(th);
  }
  for (let i = 0; i < T; i++) {
    const row = table.insertRow();
    row.dataset.q = i;
    const th = document.createElement("th");
    th.textContent = a.labels[i];
    row.appendChild(th);
    for (let j = 0; j < T; j++) {
      const td = row.insertCell();
      td.className = "cell";
      td.dataset.q = i;
      td.dataset.k = j;
      td.dataset.w = w[i][j];
      td.title = `${a.labels[i]} -> ${a.labels[j]}: ${w[i][j].toFixed(4)}`;
      td.style.background = shade(w[i][j]);
      td.addEventListener("click", () => explain(i, j));
    }
  }
}

// --- the formula with numbers ------------------------------------------------------------------
const fmt = (x) => x.toFixed(4);
const vec = (v) => "[" + v.map((x) => x.toFixed(3)).join(", ") + "]";

async function explain(query, key) {
  state.query = query;
  state.key = key;
  for (const td of $("matrix").querySelectorAll("td.chosen")) td.classList.remove("chosen");
  $("matrix").rows[query + 1].cells[key + 1].classList.add("chosen");
  try {
    const e = await call("/api/explain", { text: $("text").value, checkpoint: checkpoint(),
      layer: state.layer, head: state.head, query });
    const box = $("explain");
    const maxScaled = Math.max(...e.keys.map((k) => k.scaled));
    const sumExp = e.keys.reduce((s, k) => s + Math.exp(k.scaled - maxScaled), 0);
    let rows = "";
    for (const k of e.keys)
      rows += `<tr class="${k.position === key ? "chosen" : ""}" data-key="${k.position}">` +
        `<td>${k.position}</td><td>${escapeHtml(k.label)}</td><td class="vec">${vec(k.k)}</td>` +
        `<td>${fmt(k.dot)}</td><td>${fmt(k.scaled)}</td>` +
        `<td>${fmt(Math.exp(k.scaled - maxScaled))}</td><td class="weight">${fmt(k.weight)}</td>` +
        `<td class="vec">${vec(k.v)}</td></tr>`;
    const chosen = e.keys[key];
    box.innerHTML =
      `<p>Layer ${e.layer + 1}, head ${e.head + 1}, query ${e.query} ` +
      `(<b>${escapeHtml(e.query_label)}</b>), d<sub>k</sub> = ${e.d_k}: ` +
      `scores are divided by &radic;${e.d_k} (times ${fmt(e.scale)}).</p>` +
      `<p>q = <span class="vec">${vec(e.q)}</span></p>` +
      `<table><tr><th>key</th><th>token</th><th>k</th><th>q&middot;k</th>` +
      `<th>/ &radic;d<sub>k</sub></th><th>exp(&middot; &minus; max)</th><th>softmax</th>` +
      `<th>v</th></tr>${rows}</table>` +
      (chosen === undefined ? `<p>Key ${key} is after the query: a causal model gives it ` +
        `weight 0.</p>` :
        `<p>Weight of <b>${escapeHtml(chosen.label)}</b>: exp(${fmt(chosen.scaled)} &minus; ` +
        `${fmt(maxScaled)}) / ${fmt(sumExp)} = <b id="explain-weight">${chosen.weight}</b>; ` +
        `the model's own forward pass gave <span id="explain-model-weight">` +
        `${chosen.model_weight}</span>.</p>`) +
      `<p>Output of this head at ${escapeHtml(e.query_label)} = &Sigma; softmax<sub>j</sub> ` +
      `v<sub>j</sub> = <span class="vec">${vec(e.output)}</span></p>`;
    showError("");
  } catch (err) { showError(err.message); }
}

function escapeHtml(s) {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// --- the next token ----------------------------------------------------------------------------
async function nextTokens() {
  const t = +$("temperature").value;
  $("temperature-value").textContent = t.toFixed(2);
  try {
    const n = await call("/api/next", { text: $("text").value, checkpoint: checkpoint(),
      temperature: t, top: 10 });
    $("next").innerHTML = "";
    for (const tok of n.top) {
      const li = document.createElement("li");
      li.textContent = `${tok.label.padEnd(8)} ${(100 * tok.probability).toFixed(1).padStart(5)}%`;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.round(200 * tok.probability)}px`;
      li.appendChild(bar);
      $("next").appendChild(li);
    }
  } catch (err) { showError(err.message); }
}

// --- generation, streamed from the OpenAI-compatible endpoint ----------------------------------
async function generate() {
  const out = $("generated"), status = $("gen-status");
  out.innerHTML = "";
  const prompt = document.createElement("span");
  prompt.className = "prompt";
  prompt.textContent = $("text").value;
  const body = document.createElement("span");
  body.id = "generated-text";
  out.append(prompt, body);
  status.textContent = "generating...";
  $("generate").disabled = true;
  try {
    const model = $("model-name").dataset.model + (checkpoint() ? ":" + checkpoint() : "");
    const response = await fetch("/v1/completions", { method: "POST", headers: headers(),
      body: JSON.stringify({ model, prompt: $("text").value, max_tokens: +$("max-tokens").value,
        temperature: +$("temperature").value, seed: +$("seed").value, stream: true }) });
    if (!response.ok) throw new Error((await response.json()).error.message);
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let pending = "", finish = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = pending.indexOf("\n\n")) >= 0) {  // one server-sent event
        const event = pending.slice(0, cut);
        pending = pending.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.choices.length) {
          body.textContent += chunk.choices[0].text;
          finish = chunk.choices[0].finish_reason || finish;
        }
      }
    }
    status.textContent = `done (${finish})`;
    status.dataset.finish = finish;
  } catch (err) {
    status.textContent = "failed";
    showError(err.message);
  }
  $("generate").disabled = false;
}

// --- contextual embeddings ---------------------------------------------------------------------
async function compareEmbeddings() {
  const lines = $("sentences").value.split("\n").map((s) => s.trim()).filter((s) => s);
  const senses = [], sentences = [];
  for (const line of lines) {
    const bar = line.indexOf("|");
    senses.push(bar >= 0 ? line.slice(0, bar).trim() : "");
    sentences.push(bar >= 0 ? line.slice(bar + 1).trim() : line);
  }
  const labelled = senses.every((s) => s);
  try {
    const e = await call("/api/embed", { sentences, senses: labelled ? senses : [],
      word: $("word").value, checkpoint: checkpoint() });
    drawEmbedTable(e);
    drawSeparation(e);
    showError("");
  } catch (err) { showError(err.message); }
}

function drawEmbedTable(e) {
  const table = $("embed-table");
  table.innerHTML = "";
  if (e.separation) {
    table.innerHTML = "<tr><th>level</th><th>between / within distance</th>" +
      "<th>nearest centroid</th><th>cosine within</th><th>cosine between</th>" +
      "<th>raw cosine between</th></tr>" + e.separation.levels.map((l) =>
        `<tr><th>${l.level}</th><td>${l.distance_ratio === null ? "-" : l.distance_ratio.toFixed(2)}</td>` +
        `<td>${(100 * l.nearest_centroid_accuracy).toFixed(0)}%</td>` +
        `<td>${l.cosine_within.toFixed(3)}</td><td>${l.cosine_between.toFixed(3)}</td>` +
        `<td>${l.raw_cosine_between.toFixed(3)}</td></tr>`).join("");
    return;
  }
  if (!e.pairs) return;
  table.innerHTML = "<tr><th>level</th>" + e.pairs.map((p) =>
    `<th>cosine ${p.sentences[0]}-${p.sentences[1]} (raw)</th>`).join("") + "</tr>" +
    e.levels.map((level, l) => `<tr><th>${level}</th>` +
      e.pairs.map((p) => `<td>${p.cosine[l].toFixed(3)}</td>`).join("") + "</tr>").join("");
}

function drawSeparation(e) {
  const box = $("pca-box");
  box.hidden = !e.separation;
  if (!e.separation) return;
  const select = $("pca-level");
  select.innerHTML = e.separation.levels.map((l, i) =>
    `<option value="${i}">${l.level}</option>`).join("");
  select.value = e.separation.levels.length - 1;
  const draw = () => {
    const level = e.separation.levels[+select.value], svg = $("pca");
    const colours = ["#1a5fb4", "#e01b24", "#26a269", "#a347ba", "#c64600"];
    const xs = level.pca.map((p) => p[0]), ys = level.pca.map((p) => p[1]);
    const span = (v) => Math.max(1e-9, Math.max(...v) - Math.min(...v));
    const sx = (x) => 20 + 320 * (x - Math.min(...xs)) / span(xs);
    const sy = (y) => 280 - 260 * (y - Math.min(...ys)) / span(ys);
    svg.innerHTML = level.pca.map((p, i) => `<circle cx="${sx(p[0])}" cy="${sy(p[1])}" r="5" ` +
      `fill="${colours[e.separation.sense_of[i] % colours.length]}"><title>` +
      `${escapeHtml(e.separation.senses[e.separation.sense_of[i]])}</title></circle>`).join("") +
      e.separation.senses.map((s, i) => `<text x="10" y="${14 + 14 * i}" ` +
        `fill="${colours[i % colours.length]}">${escapeHtml(s)}</text>`).join("");
  };
  select.onchange = draw;
  draw();
}

// --- wiring ------------------------------------------------------------------------------------
async function showAttention() {
  try {
    const a = await call("/api/attention", { text: $("text").value, checkpoint: checkpoint() });
    state.attention = a;
    $("token-count").textContent = `${a.tokens.length} tokens, step ${a.step}`;
    drawGrid(a);
    selectHead(Math.min(state.layer, a.n_layer - 1), Math.min(state.head, a.n_head - 1));
    $("explain").innerHTML = '<p class="hint">Click a cell of the table above.</p>';
    showError("");
    document.body.dataset.ready = "attention";
  } catch (err) { showError(err.message); }
  nextTokens();
}

async function start() {
  let info;
  try {
    info = await call("/api/info");
    $("model-name").textContent = `${info.model}: ${info.config.n_layer} layers, ` +
      `${info.config.n_head} heads, d_model ${info.config.d_model}, context ` +
      `${info.config.block_size}, ${info.tokenizer} tokenizer`;
    $("model-name").dataset.model = info.model;
    $("checkpoint").innerHTML = info.checkpoints.map((c) =>
      `<option${c === info.default ? " selected" : ""}>${c}</option>`).join("");
  } catch (err) { showError(err.message); return; }
  // A default text this model's vocabulary lacks (a word model): the model's own words instead.
  try {
    await call("/api/attention", { text: $("text").value, checkpoint: checkpoint() });
  } catch (err) {
    $("text").value = info.example;
  }
  showAttention();
}

$("run").addEventListener("click", showAttention);
$("checkpoint").addEventListener("change", showAttention);
$("temperature").addEventListener("input", nextTokens);
$("generate").addEventListener("click", generate);
$("embed-run").addEventListener("click", compareEmbeddings);
$("api-key").addEventListener("change", start);
start();
