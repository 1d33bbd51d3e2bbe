// The ncg explorer page: draws the graph written by viz.explore with the Canvas 2D API.
// Data: the JSON in #ncg-data (typed arrays as zlib + base64, inflated by DecompressionStream).
// window.ncgExplorer exposes the numbers the page shows (stats, per-round counts) for tests.
"use strict";
(function () {
  const ROLE = { HIDDEN: 0, OUTPUT: 1, INPUT: 2 };
  const LEVELS = 6;                  // opacity steps of |w|
  const FRAME_MS = 30;               // edge budget of an interactive frame (pan, zoom)
  const SETTLE_MS = 180;             // full frame this long after the last interaction
  const PATH_SEGMENTS = 256;         // edges per stroked path
  // Edges are 1 px wide: Skia draws those as hairlines, wider ones are stroked into polygons
  // (ten times slower); the strength of an edge shows in its opacity.
  const COLORS = {
    positive: [178, 24, 43], negative: [33, 102, 172], kept: [140, 140, 140], pruned: [214, 39, 40],
    added: [44, 160, 44], output: "#f28e2b", input: "#d5e8cf", removed: "#d62728",
  };
  const HIDDEN_PIXEL = new Uint32Array(new Uint8ClampedArray([59, 59, 59, 255]).buffer)[0];  // #3b3b3b, opaque
  const scriptAt = performance.now();
  const raw = JSON.parse(document.getElementById("ncg-data").textContent);
  const parsedAt = performance.now();
  const canvas = document.getElementById("graph");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });  // a CPU canvas: frames are timed to the last pixel
  const $ = (id) => document.getElementById(id);
  const fmt = (v) => (typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(4)) : String(v));

  // ------------------------------------------------------------------ decoding
  const B64 = new Uint8Array(128);
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".split("").forEach((c, i) => { B64[c.charCodeAt(0)] = i; });
  function fromBase64(s) {
    let n = s.length; const pad = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
    const out = new Uint8Array((n * 3) / 4 - pad); let o = 0;
    for (let i = 0; i < n; i += 4) {
      const v = (B64[s.charCodeAt(i)] << 18) | (B64[s.charCodeAt(i + 1)] << 12) | (B64[s.charCodeAt(i + 2)] << 6) | B64[s.charCodeAt(i + 3)];
      out[o++] = v >> 16; if (o < out.length) out[o++] = (v >> 8) & 255; if (o < out.length) out[o++] = v & 255;
    }
    return out;
  }
  async function unpack(p) {
    const stream = new Blob([fromBase64(p.z)]).stream().pipeThrough(new DecompressionStream("deflate"));
    const buffer = await new Response(stream).arrayBuffer();
    const values = new self[p.type + "Array"](buffer, 0, p.n);
    if (p.delta) for (let i = 1; i < values.length; i++) values[i] += values[i - 1];
    return values;
  }

  // ------------------------------------------------------------------ state
  const S = {
    round: 0, last: 0, threshold: 0, maxEdges: raw.maxDrawnEdges, hover: -1, selected: -1,
    scale: 1, tx: 0, ty: 0, width: 0, height: 0, dpr: 1,
    layers: [], candidates: 0, drawnTarget: 0, below: 0, kindCounts: null,
    firstFrameMs: null, lastRedrawMs: null, lastEdgeMs: 0, drawnEdges: 0, perEdgeMs: 0.004,
    settled: true, settleTimer: 0, frames: 0, log: [], phases: {},
  };
  let N, E, F, X, Y, role, nodeId, gen, outIdx, inIdx, bias, rate, born, died, src, dst, weight, absSorted;
  let present, rounds, inPtr, inList, outPtr, outList, idToNode, level, hashes, encoder = null;
  let grid = null;                                   // hit-test buckets
  let field = null;                                  // receptive field of the focused neuron: Float32Array per input

  function hashUnit(i) {                             // a fixed pseudo-random number in [0, 1) per edge
    let h = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16;
    return (h >>> 8) / 16777216;
  }

  function csr(keys, count) {
    const ptr = new Int32Array(count + 1);
    for (let e = 0; e < keys.length; e++) ptr[keys[e] + 1]++;
    for (let v = 0; v < count; v++) ptr[v + 1] += ptr[v];
    const fill = ptr.slice(0, count), list = new Int32Array(keys.length);
    for (let e = 0; e < keys.length; e++) list[fill[keys[e]]++] = e;
    return [ptr, list];
  }

  async function load() {
    const nodes = raw.nodes;
    const names = Object.keys(nodes);
    const columns = await Promise.all(names.map((name) => unpack(nodes[name])));
    const col = Object.fromEntries(names.map((name, i) => [name, columns[i]]));
    [src, dst, weight] = await Promise.all([unpack(raw.src), unpack(raw.dst), unpack(raw.weight)]);
    ({ x: X, y: Y, role, id: nodeId, generation: gen, output_index: outIdx, input_index: inIdx, bias, firing_rate: rate, born, died } = col);
    N = nodeId.length; E = src.length; F = raw.numEdges;
    rounds = await Promise.all(raw.rounds.map(async (r) => ({ ...r, pruned: await unpack(r.pruned), added: await unpack(r.added) })));
    if (raw.encoder) encoder = { rows: raw.encoder.rows, cols: raw.encoder.cols, values: await unpack(raw.encoder.values) };
    S.phases.decodedMs = performance.now();
    S.last = Math.max(rounds.length - 1, 0); S.round = S.last;
    present = new Uint8Array(E); present.fill(1, 0, F);
    [inPtr, inList] = csr(dst, N); [outPtr, outList] = csr(src, N);
    idToNode = new Map(); for (let v = 0; v < N; v++) idToNode.set(nodeId[v], v);
    absSorted = new Float32Array(F); for (let e = 0; e < F; e++) absSorted[e] = Math.abs(weight[e]);
    const scale = F ? Math.max(absSorted[Math.min(F - 1, Math.floor(0.01 * F))], 1e-12) : 1;
    level = new Uint8Array(F);
    for (let e = 0; e < F; e++) level[e] = Math.min(LEVELS - 1, Math.floor((absSorted[e] / scale) * LEVELS));
    hashes = new Float32Array(E); for (let e = 0; e < E; e++) hashes[e] = hashUnit(e);
    buildGrid();
  }

  // ------------------------------------------------------------------ rounds and edge lists
  function alive(v) { return born[v] <= S.round && S.round < died[v]; }

  function stepTo(k) {
    while (S.round > k) { const r = rounds[S.round]; for (const e of r.added) present[e] = 0; for (const e of r.pruned) present[e] = 1; S.round--; }
    while (S.round < k) { S.round++; const r = rounds[S.round]; for (const e of r.pruned) present[e] = 0; for (const e of r.added) present[e] = 1; }
  }

  function countAbove(t) {                           // edges with |w| >= t: a prefix of the strongest-first order
    let lo = 0, hi = F;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (absSorted[mid] >= t) lo = mid + 1; else hi = mid; }
    return lo;
  }

  function roundCounts(k) {
    const saved = S.round; stepTo(k);
    let edges = 0; for (let e = 0; e < E; e++) edges += present[e];
    let neurons = 0; for (let v = 0; v < N; v++) neurons += alive(v) ? 1 : 0;
    const r = rounds[k];
    stepTo(saved);
    let dropped = 0, removedNeurons = 0, addedNeurons = 0;
    if (r) for (const e of r.pruned) dropped += died[src[e]] === k || died[dst[e]] === k ? 1 : 0;
    if (k > 0) for (let v = 0; v < N; v++) { removedNeurons += died[v] === k ? 1 : 0; addedNeurons += born[v] === k ? 1 : 0; }
    return { round: r ? r.round : 0, edges, neurons, pruned: r ? r.pruned.length : 0, added: r ? r.added.length : 0,
             droppedWithNeurons: dropped, removedNeurons, addedNeurons };
  }

  function weightView() { return S.round === S.last; }

  function buildLayers() {
    S.layers = [];
    if (weightView()) {
      const passing = countAbove(S.threshold), drawn = Math.min(passing, S.maxEdges);
      S.candidates = passing; S.drawnTarget = drawn; S.below = F - passing; S.kindCounts = null;
      const groups = [];
      for (let s = 0; s < 2; s++) for (let l = 0; l < LEVELS; l++) groups.push([]);
      for (let e = 0; e < drawn; e++) groups[(weight[e] >= 0 ? 0 : LEVELS) + level[e]].push(e);
      const base = Math.min(0.85, Math.max(0.1, Math.sqrt(600 / Math.max(drawn, 1))));
      for (let l = 0; l < LEVELS; l++) for (let s = 0; s < 2; s++) {       // weakest first, strongest on top
        const idx = Int32Array.from(groups[s * LEVELS + l]);
        const pri = new Float32Array(idx.length); for (let i = 0; i < idx.length; i++) pri[i] = idx[i] / Math.max(drawn, 1);
        const mag = (l + 1) / LEVELS, c = s ? COLORS.negative : COLORS.positive;
        S.layers.push({ idx, pri, color: `rgba(${c[0]},${c[1]},${c[2]},${(base * (0.35 + 0.65 * mag)).toFixed(3)})` });
      }
      return;
    }
    const r = rounds[S.round], isAdded = new Uint8Array(E);
    for (const e of r.added) isAdded[e] = 1;
    let total = r.pruned.length; for (let e = 0; e < E; e++) total += present[e];
    const rate = Math.min(1, S.maxEdges / Math.max(total, 1));
    const kinds = { kept: [], pruned: [], added: [] };
    for (let e = 0; e < E; e++) if (present[e] && hashes[e] < rate) (isAdded[e] ? kinds.added : kinds.kept).push(e);
    for (const e of r.pruned) if (hashes[e] < rate) kinds.pruned.push(e);
    S.candidates = total; S.below = 0;
    S.drawnTarget = kinds.kept.length + kinds.pruned.length + kinds.added.length;
    S.kindCounts = { kept: total - r.pruned.length - r.added.length, pruned: r.pruned.length, added: r.added.length, rate };
    const base = Math.min(0.8, Math.max(0.08, Math.sqrt(600 / Math.max(S.drawnTarget, 1))));
    for (const kind of ["kept", "pruned", "added"]) {
      const idx = Int32Array.from(kinds[kind]).sort((a, b) => hashes[a] - hashes[b]);
      const pri = new Float32Array(idx.length); for (let i = 0; i < idx.length; i++) pri[i] = hashes[idx[i]] / rate;
      const c = COLORS[kind], alpha = base;           // one opacity: the colours keep the true proportions
      S.layers.push({ idx, pri, color: `rgba(${c[0]},${c[1]},${c[2]},${alpha.toFixed(3)})` });
    }
  }

  // ------------------------------------------------------------------ view
  function sx(x) { return x * S.scale + S.tx; }
  function sy(y) { return y * S.scale + S.ty; }

  function bounds() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let v = 0; v < N; v++) { if (X[v] < x0) x0 = X[v]; if (X[v] > x1) x1 = X[v]; if (Y[v] < y0) y0 = Y[v]; if (Y[v] > y1) y1 = Y[v]; }
    return [x0, x1, y0, y1];
  }

  function fit() {
    const [x0, x1, y0, y1] = bounds(), pad = 30;
    S.scale = Math.min((S.width - 2 * pad) / Math.max(x1 - x0, 1e-6), (S.height - 2 * pad) / Math.max(y1 - y0, 1e-6));
    S.tx = (S.width - (x1 + x0) * S.scale) / 2; S.ty = (S.height - (y1 + y0) * S.scale) / 2;
  }

  function resize() {
    const box = canvas.parentElement.getBoundingClientRect();
    S.dpr = window.devicePixelRatio || 1; S.width = box.width; S.height = box.height;
    canvas.width = Math.round(box.width * S.dpr); canvas.height = Math.round(box.height * S.dpr);
  }

  function buildGrid() {
    const [x0, x1, y0, y1] = bounds(), cells = Math.max(1, Math.ceil(Math.sqrt(N / 4)));
    const cw = Math.max((x1 - x0) / cells, 1e-9), ch = Math.max((y1 - y0) / cells, 1e-9);
    const key = new Int32Array(N);
    for (let v = 0; v < N; v++) key[v] = Math.min(cells - 1, Math.floor((X[v] - x0) / cw)) * cells + Math.min(cells - 1, Math.floor((Y[v] - y0) / ch));
    const [ptr, list] = csr(key, cells * cells);
    grid = { x0, y0, cw, ch, cells, ptr, list };
  }

  function nodeAt(px, py) {                         // nearest drawn node within reach of a CSS pixel
    const wx = (px - S.tx) / S.scale, wy = (py - S.ty) / S.scale;
    const reach = Math.max(8 / S.scale, cellSize() / 2);
    const g = grid, c0 = Math.floor((wx - reach - g.x0) / g.cw), c1 = Math.floor((wx + reach - g.x0) / g.cw);
    const r0 = Math.floor((wy - reach - g.y0) / g.ch), r1 = Math.floor((wy + reach - g.y0) / g.ch);
    let best = -1, bestD = reach * reach;
    for (let c = Math.max(c0, 0); c <= Math.min(c1, g.cells - 1); c++) for (let r = Math.max(r0, 0); r <= Math.min(r1, g.cells - 1); r++) {
      const cell = c * g.cells + r;
      for (let i = g.ptr[cell]; i < g.ptr[cell + 1]; i++) {
        const v = g.list[i]; if (!alive(v)) continue;
        const d = (X[v] - wx) ** 2 + (Y[v] - wy) ** 2; if (d <= bestD) { bestD = d; best = v; }
      }
    }
    return best;
  }

  function cellSize() { return raw.cell; }

  // ------------------------------------------------------------------ drawing
  function strokeEdges(layer, count, alphaScale) {
    const W = S.width, H = S.height, idx = layer.idx;
    ctx.globalAlpha = alphaScale; ctx.strokeStyle = layer.color; ctx.lineWidth = 1;
    let path = new Path2D(), segments = 0;
    for (let i = 0; i < count; i++) {
      const e = idx[i], a = src[e], b = dst[e];
      const x0 = sx(X[a]), y0 = sy(Y[a]), x1 = sx(X[b]), y1 = sy(Y[b]);
      if ((x0 < 0 && x1 < 0) || (x0 > W && x1 > W) || (y0 < 0 && y1 < 0) || (y0 > H && y1 > H)) continue;  // off screen
      path.moveTo(x0, y0); path.lineTo(x1, y1);
      // Skia fills a stroked path scanline by scanline over all its segments: many short paths
      // rasterise far faster than one long one of crossing lines.
      if (++segments === PATH_SEGMENTS) { ctx.stroke(path); path = new Path2D(); segments = 0; }
    }
    if (segments) ctx.stroke(path);
    ctx.globalAlpha = 1;
    return count;
  }

  function lowerBound(arr, value) { let lo = 0, hi = arr.length; while (lo < hi) { const m = (lo + hi) >> 1; if (arr[m] < value) lo = m + 1; else hi = m; } return lo; }

  function focus() { return S.hover >= 0 ? S.hover : S.selected; }

  let layer = null;                                  // hidden neurons, drawn as pixels
  function pixelLayer() {
    if (!layer || layer.width !== canvas.width || layer.height !== canvas.height) {
      const c = document.createElement("canvas"); c.width = canvas.width; c.height = canvas.height;
      const lctx = c.getContext("2d", { willReadFrequently: true }), image = lctx.createImageData(c.width, c.height);
      layer = { canvas: c, ctx: lctx, image, pixels: new Uint32Array(image.data.buffer), width: c.width, height: c.height };
    }
    layer.pixels.fill(0);
    return layer;
  }

  function drawNodes() {
    const cell = cellSize() * S.scale, f = focus();
    const r = Math.max(1.5, Math.min(5, 0.45 * S.scale * 0.01 + 1));
    let fmax = 0;
    if (field) for (let i = 0; i < field.length; i++) fmax = Math.max(fmax, Math.abs(field[i]));
    const inputs = new Path2D(), outputs = new Path2D(), removed = new Path2D();
    const hidden = pixelLayer(), side = Math.max(2, Math.round(2 * r * S.dpr)), w = hidden.width, h = hidden.height;
    for (let v = 0; v < N; v++) {
      const x = sx(X[v]), y = sy(Y[v]);
      if (x < -10 || x > S.width + 10 || y < -10 || y > S.height + 10) continue;
      if (!alive(v)) { if (died[v] === S.round && S.round > 0) { removed.moveTo(x - 3, y - 3); removed.lineTo(x + 3, y + 3); removed.moveTo(x + 3, y - 3); removed.lineTo(x - 3, y + 3); } continue; }
      if (role[v] === ROLE.INPUT) {
        const side = raw.imageShape && cell > 0 ? cell : 2 * r;
        if (field && inIdx[v] >= 0 && field[inIdx[v]] !== 0) {
          const t = field[inIdx[v]] / (fmax || 1), c = t > 0 ? COLORS.positive : COLORS.negative;
          ctx.fillStyle = `rgba(${c[0]},${c[1]},${c[2]},${Math.min(1, 0.15 + 0.85 * Math.abs(t)).toFixed(3)})`;
          ctx.fillRect(x - side / 2, y - side / 2, side, side);
        } else inputs.rect(x - side / 2, y - side / 2, Math.max(side - (side > 4 ? 1 : 0), 0.5), Math.max(side - (side > 4 ? 1 : 0), 0.5));
      } else if (role[v] === ROLE.OUTPUT) {
        const d = r + 3; outputs.moveTo(x, y - d); outputs.lineTo(x + d, y); outputs.lineTo(x, y + d); outputs.lineTo(x - d, y); outputs.closePath();
      } else {                                       // a square of pixels: a hundred thousand cost milliseconds
        const px0 = Math.max(0, Math.round(x * S.dpr - side / 2)), py0 = Math.max(0, Math.round(y * S.dpr - side / 2));
        for (let py = py0; py < Math.min(h, py0 + side); py++) hidden.pixels.fill(HIDDEN_PIXEL, py * w + px0, py * w + Math.min(w, px0 + side));
      }
    }
    ctx.fillStyle = COLORS.input; ctx.fill(inputs);
    hidden.ctx.putImageData(hidden.image, 0, 0);
    ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.drawImage(hidden.canvas, 0, 0); ctx.setTransform(S.dpr, 0, 0, S.dpr, 0, 0);
    ctx.fillStyle = COLORS.output; ctx.fill(outputs); ctx.strokeStyle = "#000"; ctx.lineWidth = 0.6; ctx.stroke(outputs);
    ctx.strokeStyle = COLORS.removed; ctx.lineWidth = 1.5; ctx.stroke(removed);
    ctx.fillStyle = "#000"; ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
    const labels = [];                               // output classes, moved right past the labels they would cover
    for (let v = 0; v < N; v++) {
      if (role[v] !== ROLE.OUTPUT || !alive(v)) continue;
      const text = String(outIdx[v]), y = sy(Y[v]), width = ctx.measureText(text).width + 4;
      let x = sx(X[v]) + r + 6;
      for (const l of labels) if (Math.abs(l.y - y) < 11 && x < l.x + l.width && l.x < x + width) x = l.x + l.width;
      labels.push({ x, y, width }); ctx.fillText(text, x, y);
    }
    if (f >= 0) {
      ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.beginPath(); ctx.arc(sx(X[f]), sy(Y[f]), r + 5, 0, 2 * Math.PI); ctx.stroke();
    }
  }

  function drawFocusEdges(v) {
    const path = { in: new Path2D(), out: new Path2D() };
    for (const [ptr, list, kind] of [[inPtr, inList, "in"], [outPtr, outList, "out"]]) {
      for (let i = ptr[v]; i < ptr[v + 1]; i++) {
        const e = list[i]; if (!present[e]) continue;
        path[kind].moveTo(sx(X[src[e]]), sy(Y[src[e]])); path[kind].lineTo(sx(X[dst[e]]), sy(Y[dst[e]]));
      }
    }
    ctx.lineWidth = 1.6;
    ctx.strokeStyle = "rgba(230,120,0,0.9)"; ctx.stroke(path.in);
    ctx.strokeStyle = "rgba(120,40,160,0.9)"; ctx.stroke(path.out);
  }

  // One frame. fraction < 1: an interactive frame drawing that share of each layer (its first, most
  // important edges); the full frame follows once interaction stops.
  function draw(fraction, interactive = false) {
    const t0 = performance.now();
    ctx.setTransform(S.dpr, 0, 0, S.dpr, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, S.width, S.height);
    const f = focus(), dim = f >= 0 ? 0.3 : 1;
    let drawn = 0;
    for (const layer of S.layers) drawn += strokeEdges(layer, fraction >= 1 ? layer.idx.length : lowerBound(layer.pri, fraction), dim);
    if (f >= 0) drawFocusEdges(f);
    drawNodes();
    ctx.getImageData(0, 0, 1, 1);                  // finish the raster inside the timed frame
    const ms = performance.now() - t0;
    if (drawn > 200) {                             // cost of an edge, whole frame included: quick up, slow down
      const cost = ms / drawn; S.perEdgeMs = Math.max(cost, 0.7 * S.perEdgeMs + 0.3 * cost);
    }
    S.lastRedrawMs = ms; S.drawnEdges = drawn; S.frames++;
    S.log.push({ frame: S.frames, ms, drawn, interactive }); if (S.log.length > 200) S.log.shift();
    S.settled = fraction >= 1;
    if (S.firstFrameMs === null) S.firstFrameMs = performance.now();
    updateCounts();
  }

  function redrawFull() { clearTimeout(S.settleTimer); draw(1); }

  function redrawInteractive() {                    // pan and zoom: a time-budgeted frame, then the full one
    const budget = Math.max(500, Math.floor(FRAME_MS / S.perEdgeMs));
    draw(Math.min(1, budget / Math.max(S.drawnTarget, 1)), true);
    clearTimeout(S.settleTimer);
    if (!S.settled) S.settleTimer = setTimeout(() => draw(1), SETTLE_MS);
  }

  // ------------------------------------------------------------------ panel
  function updateCounts() {
    const hidden = S.candidates - S.drawnEdges;
    let text;
    if (weightView()) {
      text = `drawn ${fmt(S.drawnEdges)} of ${fmt(F)} edges\nhidden (level of detail): ${fmt(hidden)}\nbelow threshold: ${fmt(S.below)}`;
    } else {
      const k = S.kindCounts;
      text = `drawn ${fmt(S.drawnEdges)} of ${fmt(S.candidates)} (kept, pruned and added, ${k.rate >= 1 ? "all" : (100 * k.rate).toPrecision(2) + "% of each kind"})\n` +
        `hidden (level of detail): ${fmt(hidden)}\nweights are those of the final graph: the threshold applies there`;
    }
    if (!S.settled) text += "\n(moving: a share of the edges)";
    $("edge-counts").textContent = text;
  }

  function showRound() {
    const c = roundCounts(S.round), r = rounds[S.round];
    $("round-label").textContent = r ? `${r.round} of ${rounds[S.last].round} (${r.phase})` : "";
    const metric = r && r.metrics && (r.metrics.val_accuracy ?? r.metrics.train_accuracy);
    const neurons = c.removedNeurons || c.addedNeurons ? `\nneurons removed ${fmt(c.removedNeurons)}, added ${fmt(c.addedNeurons)}` +
      ` (${fmt(c.droppedWithNeurons)} of the pruned edges went with them)` : "";
    $("round-counts").textContent = r ? `edges ${fmt(c.edges)}, neurons ${fmt(c.neurons)}, depth ${r.depth}\n` +
      `pruned ${fmt(c.pruned)}, added ${fmt(c.added)} this round${neurons}` + (metric !== undefined ? `\naccuracy ${metric.toFixed(4)}` : "") : "";
    $("threshold").disabled = !weightView();
  }

  function showLegend() {
    const sw = (c) => `<span class="swatch" style="background:rgb(${c})"></span>`;
    $("legend").innerHTML = weightView()
      ? `${sw(COLORS.positive)}positive weight ${sw(COLORS.negative)}negative weight<br>opacity grows with |w|; strongest edges drawn first`
      : `${sw(COLORS.kept)}kept ${sw(COLORS.pruned)}pruned this round ${sw(COLORS.added)}added this round`;
    $("legend").innerHTML += `<br><span style="color:${COLORS.output}">&#9670;</span> output (class index) &#9632; hidden` +
      (raw.imageShape ? " &#9633; input pixel" : "") + `<br><span style="color:rgb(230,120,0)">in-edges</span> / <span style="color:rgb(120,40,160)">out-edges</span> of the neuron under the mouse`;
  }

  function neuronText(v) {
    const lines = [`neuron id ${nodeId[v]} (index ${v})`];
    let roleText = ["hidden", "output " + outIdx[v], "input"][role[v]];
    if (role[v] === ROLE.INPUT && raw.imageShape) roleText = `input pixel (${Math.floor(inIdx[v] / raw.imageShape[1])}, ${inIdx[v] % raw.imageShape[1]})`;
    else if (role[v] === ROLE.INPUT) roleText = `input feature ${inIdx[v]}`;
    lines.push(`role        ${roleText}`, `generation  ${gen[v]}`);
    lines.push(`bias        ${Number.isNaN(bias[v]) ? "n/a (removed)" : bias[v].toPrecision(4)}`);
    let fanIn = 0, fanOut = 0;
    for (let i = inPtr[v]; i < inPtr[v + 1]; i++) fanIn += present[inList[i]];
    for (let i = outPtr[v]; i < outPtr[v + 1]; i++) fanOut += present[outList[i]];
    lines.push(`fan-in      ${fanIn}`, `fan-out     ${fanOut}`);
    if (!Number.isNaN(rate[v])) lines.push(`firing rate ${rate[v].toFixed(3)}`);
    if (died[v] < rounds.length) lines.push(`removed in round ${rounds[died[v]].round}`);
    if (born[v] > 0) lines.push(`added in round ${rounds[born[v]].round}`);
    return lines.join("\n");
  }

  function receptiveField(v) {                      // direct input weights of neuron v (final graph)
    if (!raw.imageShape || role[v] === ROLE.INPUT) return null;
    const [h, w] = raw.imageShape, values = new Float32Array(h * w);
    if (encoder) { if (v >= encoder.rows) return null; values.set(encoder.values.subarray(v * encoder.cols, (v + 1) * encoder.cols)); return values; }
    let any = false;
    for (let i = inPtr[v]; i < inPtr[v + 1]; i++) { const e = inList[i]; if (e < F && inIdx[src[e]] >= 0) { values[inIdx[src[e]]] = weight[e]; any = true; } }
    return any ? values : null;
  }

  function showNeuron(v) {
    $("neuron").hidden = v < 0;
    if (v < 0) return;
    $("neuron-text").textContent = neuronText(v);
    const fieldCanvas = $("field"), box = $("field-box");
    const values = receptiveField(v);
    box.hidden = !raw.imageShape || role[v] === ROLE.INPUT;
    if (!values) { fieldCanvas.width = 0; fieldCanvas.height = 0; $("field-caption").textContent = "no direct input weights"; return; }
    const [h, w] = raw.imageShape, zoom = Math.max(1, Math.floor(224 / Math.max(h, w)));
    fieldCanvas.width = w; fieldCanvas.height = h; fieldCanvas.style.width = `${w * zoom}px`; fieldCanvas.style.height = `${h * zoom}px`;
    const fc = fieldCanvas.getContext("2d"), image = fc.createImageData(w, h);
    let m = 0; for (const value of values) m = Math.max(m, Math.abs(value));
    for (let i = 0; i < values.length; i++) {
      const t = values[i] / (m || 1), c = t >= 0 ? COLORS.positive : COLORS.negative, a = Math.abs(t);
      image.data[4 * i] = 255 + (c[0] - 255) * a; image.data[4 * i + 1] = 255 + (c[1] - 255) * a;
      image.data[4 * i + 2] = 255 + (c[2] - 255) * a; image.data[4 * i + 3] = 255;
    }
    fc.putImageData(image, 0, 0);
    $("field-caption").textContent = `receptive field: ${encoder ? "encoder row" : "input-edge weights"}, red positive, blue negative, max |w| ${m.toPrecision(3)}`;
  }

  function setFocus() {
    const f = focus();
    field = f >= 0 ? receptiveField(f) : null;
    showNeuron(f);
  }

  function showTooltip(v, px, py) {
    const tip = $("tooltip");
    tip.hidden = v < 0;
    if (v < 0) return;
    tip.textContent = neuronText(v);
    tip.style.left = `${Math.min(px + 14, S.width - 230)}px`; tip.style.top = `${Math.min(py + 14, S.height - 150)}px`;
  }

  // ------------------------------------------------------------------ controls
  function setRound(k) {
    stepTo(Math.max(0, Math.min(S.last, k)));
    $("round").value = String(S.round);
    buildLayers(); showRound(); showLegend(); setFocus(); redrawFull();
  }

  function thresholdOf(position) { return F ? (position / 1000) * absSorted[0] : 0; }

  function setThreshold(t) {
    S.threshold = t; $("threshold-label").textContent = t.toPrecision(3);
    buildLayers(); redrawFull();
  }

  function select(id) {
    const v = idToNode.get(Number(id));
    if (v === undefined) { $("search-result").textContent = `no neuron with id ${id}`; return false; }
    S.selected = v;
    S.tx = S.width / 2 - X[v] * S.scale; S.ty = S.height / 2 - Y[v] * S.scale;
    $("search-result").textContent = alive(v) ? `neuron ${id}: generation ${gen[v]}` : `neuron ${id} is not in round ${rounds[S.round].round}`;
    setFocus(); redrawFull();
    return true;
  }

  function pan(dx, dy) { S.tx += dx; S.ty += dy; redrawInteractive(); }

  function zoom(factor, px = S.width / 2, py = S.height / 2) {
    S.tx = px - (px - S.tx) * factor; S.ty = py - (py - S.ty) * factor; S.scale *= factor; redrawInteractive();
  }

  function bind() {
    let drag = null;
    canvas.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, moved: false }; canvas.classList.add("dragging"); });
    window.addEventListener("mouseup", (ev) => {
      canvas.classList.remove("dragging");
      if (drag && !drag.moved) {
        const box = canvas.getBoundingClientRect(); S.selected = nodeAt(ev.clientX - box.left, ev.clientY - box.top); setFocus(); redrawFull();
      }
      drag = null;
    });
    canvas.addEventListener("mousemove", (ev) => {
      const box = canvas.getBoundingClientRect(), px = ev.clientX - box.left, py = ev.clientY - box.top;
      if (drag && (drag.moved || Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) > 3)) {
        drag.moved = true; const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y; drag.x = ev.clientX; drag.y = ev.clientY;
        showTooltip(-1); pan(dx, dy); return;
      }
      const v = nodeAt(px, py);
      showTooltip(v, px, py);
      if (v !== S.hover) { S.hover = v; setFocus(); redrawInteractive(); }
    });
    canvas.addEventListener("mouseleave", () => { showTooltip(-1); if (S.hover >= 0) { S.hover = -1; setFocus(); redrawFull(); } });
    canvas.addEventListener("wheel", (ev) => {
      ev.preventDefault(); const box = canvas.getBoundingClientRect();
      zoom(Math.exp(-ev.deltaY * 0.0015), ev.clientX - box.left, ev.clientY - box.top);
    }, { passive: false });
    $("round").addEventListener("input", (ev) => setRound(Number(ev.target.value)));
    $("threshold").addEventListener("input", (ev) => setThreshold(thresholdOf(Number(ev.target.value))));
    $("max-edges").addEventListener("change", (ev) => { S.maxEdges = Math.max(0, Math.floor(Number(ev.target.value) || 0)); buildLayers(); redrawFull(); });
    $("search").addEventListener("change", (ev) => { if (ev.target.value.trim()) select(ev.target.value.trim()); });
    window.addEventListener("resize", () => { resize(); fit(); redrawFull(); });
  }

  function showSummary() {
    $("summary").innerHTML = "";
    for (const [label, value] of Object.entries(raw.summary)) {
      const row = $("summary").insertRow(); row.insertCell().textContent = label; row.insertCell().textContent = fmt(value);
      row.dataset.key = label;
    }
  }

  async function start() {
    S.phases.scriptMs = scriptAt; S.phases.parsedMs = parsedAt;
    await load();
    S.phases.loadedMs = performance.now();
    resize(); fit();
    $("round").max = String(S.last); $("round").value = String(S.last);
    $("rounds-box").hidden = rounds.length < 2;
    $("max-edges").value = String(S.maxEdges);
    $("threshold-label").textContent = "0";
    showSummary(); buildLayers(); showRound(); showLegend(); bind();
    redrawFull();
  }

  const ready = start();
  window.ncgExplorer = {
    ready,
    stats: () => ({
      firstFrameMs: S.firstFrameMs, lastRedrawMs: S.lastRedrawMs, drawnEdges: S.drawnEdges,
      hiddenEdges: S.candidates - S.drawnEdges, belowThreshold: S.below, candidates: S.candidates, settled: S.settled,
      round: S.round, threshold: S.threshold, maxEdges: S.maxEdges, nodes: N, edges: F, frames: S.frames, ...S.phases,
    }),
    frameLog: () => S.log.slice(), roundCounts, setRound, setThreshold, select, pan, zoom,
    screenOf: (id) => { const v = idToNode.get(Number(id)); const box = canvas.getBoundingClientRect(); return { x: box.left + sx(X[v]), y: box.top + sy(Y[v]) }; },
    settle: () => { redrawFull(); return window.ncgExplorer.stats(); },
  };
})();
