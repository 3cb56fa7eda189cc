// Map page of the ecoraster query API: parcels drawn on a canvas in the grid CRS (no base
// map, no third-party code) over a per-pixel layer of any product (value or quantity, a PNG
// of the view drawn by rio-tiler on the server) with its legend, the zone sets (districts,
// townships, wetland units), a parcel card on click, a footprint tool (draw or upload GeoJSON)
// that asks /api/site for the value lost, a comparison of candidate sites via /api/compare
// and the printable site report (项目立项) via /api/report. Product names: Chinese, then English.
"use strict";

const PALETTE = ["#f7fcf5", "#d9f0d3", "#addd8e", "#78c679", "#41ab5d", "#238443", "#006837",
                 "#004529", "#00331f", "#002416", "#00170e", "#000c07"];
const PAGE = 5000;           // parcels per request
const state = {
  info: null, view: { cx: 0, cy: 0, scale: 1 }, features: [], matched: 0,
  column: "gep_per_ha", breaks: [], selected: null, drawing: false, vertices: [],
  footprint: null, sites: [], lastSite: null, loadSeq: 0,
  layer: "", raster: null, rasterSeq: 0, zones: {}, zoneOn: {},
};
const ZONE_COLOURS = ["#7a0177", "#e66101", "#01665e", "#5e3c99"];
const $ = (id) => document.getElementById(id);
const canvas = $("map");
const ctx = canvas.getContext("2d");

function fmt(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  return Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function fmtSig(v) {  // legend bounds: 3 significant digits, so classes never read the same
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  return Number(v).toLocaleString("en-US", { maximumSignificantDigits: 3 });
}
function productLabel(p) {  // 水源涵养 water conservation (code when the catalogue has no name)
  return p.name_zh ? `${esc(p.name_zh)} <span class="en">${esc(p.name_en || "")}</span>` : esc(p.product);
}
function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
async function api(path, options) {
  const res = await fetch(path, options);
  const body = await res.json().catch(() => ({ message: res.statusText }));
  if (!res.ok) throw new Error(body.message || (body.detail && JSON.stringify(body.detail)) || res.statusText);
  return body;
}

// -- view transform (grid CRS ↔ CSS pixels) ------------------------------------------------
function size() { return { w: canvas.clientWidth, h: canvas.clientHeight }; }
function worldToScreen(x, y) {
  const { w, h } = size(), v = state.view;
  return [(x - v.cx) / v.scale + w / 2, (v.cy - y) / v.scale + h / 2];
}
function screenToWorld(px, py) {
  const { w, h } = size(), v = state.view;
  return [v.cx + (px - w / 2) * v.scale, v.cy - (py - h / 2) * v.scale];
}
function viewBBox() {
  const { w, h } = size();
  const [minx, maxy] = screenToWorld(0, 0), [maxx, miny] = screenToWorld(w, h);
  return [minx, miny, maxx, maxy];
}
function fit(bounds) {
  const { w, h } = size();
  const [minx, miny, maxx, maxy] = bounds;
  state.view = { cx: (minx + maxx) / 2, cy: (miny + maxy) / 2,
                 scale: Math.max((maxx - minx) / Math.max(w - 40, 50), (maxy - miny) / Math.max(h - 40, 50)) || 1 };
}

// -- drawing ------------------------------------------------------------------------------
function colourOf(v) {
  if (v === null || v === undefined || !state.breaks.length) return "#ccc";
  const b = state.breaks;
  let k = 0;
  while (k < b.length - 2 && v > b[k + 1]) k++;
  return PALETTE[Math.min(k, PALETTE.length - 1)];
}
function tracePolygon(rings) {
  for (const ring of rings) {
    ring.forEach(([x, y], i) => {
      const [px, py] = worldToScreen(x, y);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.closePath();
  }
}
function traceGeometry(g) {
  if (!g) return;
  if (g.type === "Polygon") tracePolygon(g.coordinates);
  else if (g.type === "MultiPolygon") g.coordinates.forEach(tracePolygon);
}
function draw() {
  const dpr = window.devicePixelRatio || 1;
  const { w, h } = size();
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const r = state.raster;
  if (r && r.layer === state.layer) {  // the per-pixel layer, placed by its bbox (follows pan / zoom)
    const [x0, y0] = worldToScreen(r.bbox[0], r.bbox[3]), [x1, y1] = worldToScreen(r.bbox[2], r.bbox[1]);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(r.img, x0, y0, x1 - x0, y1 - y0);
  }
  if (state.info) {  // the run grid's extent
    const [l, b, r, t] = state.info.bounds;
    const [x0, y0] = worldToScreen(l, t), [x1, y1] = worldToScreen(r, b);
    ctx.strokeStyle = "#9aa"; ctx.setLineDash([4, 4]); ctx.strokeRect(x0, y0, x1 - x0, y1 - y0); ctx.setLineDash([]);
  }
  const thin = state.view.scale > 0 && state.features.length > 2000;
  const fill = !state.layer;  // over a per-pixel layer parcels are outlines only
  for (const f of state.features) {
    ctx.beginPath(); traceGeometry(f.geometry);
    if (fill) { ctx.fillStyle = colourOf(f.properties[state.column]); ctx.fill("evenodd"); }
    if (!thin || !fill) { ctx.strokeStyle = fill ? "rgba(40,60,50,.45)" : "rgba(20,20,20,.55)"; ctx.lineWidth = 0.6; ctx.stroke(); }
  }
  Object.keys(state.zoneOn).forEach((name, k) => {
    const fc = state.zones[name];
    if (!state.zoneOn[name] || !fc) return;
    ctx.strokeStyle = ZONE_COLOURS[k % ZONE_COLOURS.length]; ctx.lineWidth = 1.8;
    ctx.fillStyle = ZONE_COLOURS[k % ZONE_COLOURS.length]; ctx.font = "12px 'Noto Sans CJK SC', sans-serif";
    for (const f of fc.features) {
      ctx.beginPath(); traceGeometry(f.geometry); ctx.stroke();
      const b = f.bbox_;
      if (b) { const [px, py] = worldToScreen((b[0] + b[2]) / 2, (b[1] + b[3]) / 2); ctx.fillText(f.properties.name || f.properties.zone_id || "", px, py); }
    }
  });
  if (state.selected) {
    ctx.beginPath(); traceGeometry(state.selected.geometry);
    ctx.strokeStyle = "#d7301f"; ctx.lineWidth = 2.5; ctx.stroke();
  }
  const fp = state.footprint;
  if (fp) { ctx.beginPath(); traceGeometry(fp); ctx.fillStyle = "rgba(33,102,172,.25)"; ctx.fill("evenodd");
            ctx.strokeStyle = "#2166ac"; ctx.lineWidth = 2; ctx.stroke(); }
  for (const s of state.sites) {
    if (s.geometry === fp) continue;
    ctx.beginPath(); traceGeometry(s.geometry); ctx.strokeStyle = "#6a3d9a"; ctx.lineWidth = 1.5; ctx.stroke();
  }
  if (state.vertices.length) {
    ctx.beginPath();
    state.vertices.forEach(([x, y], i) => { const [px, py] = worldToScreen(x, y); if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
    ctx.strokeStyle = "#2166ac"; ctx.lineWidth = 2; ctx.stroke();
    for (const [x, y] of state.vertices) { const [px, py] = worldToScreen(x, y); ctx.fillStyle = "#2166ac"; ctx.fillRect(px - 3, py - 3, 6, 6); }
  }
}

// -- data ---------------------------------------------------------------------------------
let loadTimer = null;
function scheduleLoad() { clearTimeout(loadTimer); loadTimer = setTimeout(() => { loadParcels(); loadRaster(); }, 120); draw(); }
async function loadRaster() {
  if (!state.layer) { state.raster = null; document.body.dataset.raster = "none"; draw(); return; }
  const seq = ++state.rasterSeq, layer = state.layer;
  const { w, h } = size(), dpr = Math.min(window.devicePixelRatio || 1, 2);
  const bbox = viewBBox();
  const pw = Math.min(Math.round(w * dpr), 4096), ph = Math.min(Math.round(h * dpr), 4096);
  const url = `/api/layers/${encodeURIComponent(layer)}/image.png?bbox=${bbox.map((v) => v.toFixed(3)).join(",")}&width=${pw}&height=${ph}`;
  document.body.dataset.raster = "loading";
  const img = new Image();
  img.onload = () => {
    if (seq !== state.rasterSeq) return;
    state.raster = { img, bbox, layer }; draw(); document.body.dataset.raster = "drawn";
  };
  img.onerror = () => { if (seq === state.rasterSeq) { document.body.dataset.raster = "error"; $("status").textContent = `error: layer ${layer} could not be drawn`; } };
  img.src = url;
}
async function loadRasterLegend() {
  if (!state.layer) { $("raster-legend").innerHTML = ""; return; }
  const lg = await api(`/api/layers/${encodeURIComponent(state.layer)}/legend`);
  const rows = lg.classes.map((c) => `<div class="row" data-class="${esc(c.class)}"><span class="sw" style="background:${c.color}"></span>${esc(c.label)}</div>`);
  const notes = lg.notes.map((n) => `<p class="note">${esc(n)}</p>`).join("");
  $("raster-legend").innerHTML = `<b>${esc(lg.name_zh || lg.id)}</b> <span class="en">${esc(lg.name_en || "")}</span><br>
    ${lg.kind === "value" ? "价值量 value" : lg.kind === "physical" ? "实物量 quantity" : "output"} · ${esc(lg.units)}${rows.join("")}${notes}`;
}
async function toggleZones(name, on) {
  state.zoneOn[name] = on;
  if (on && !state.zones[name]) {
    const fc = await api(`/api/zones/${encodeURIComponent(name)}?simplify=${(state.view.scale * 0.5).toFixed(3)}`);
    for (const f of fc.features) {  // bbox of each zone for its label
      let b = [Infinity, Infinity, -Infinity, -Infinity];
      const walk = (c) => { if (typeof c[0] === "number") { b = [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])]; } else c.forEach(walk); };
      if (f.geometry) walk(f.geometry.coordinates);
      f.bbox_ = Number.isFinite(b[0]) ? b : null;
    }
    state.zones[name] = fc;
  }
  draw();
}
async function loadParcels() {
  if (!state.info || !state.info.parcels) { document.body.dataset.state = "ready"; return; }
  const seq = ++state.loadSeq;
  const bbox = viewBBox().map((v) => v.toFixed(3)).join(",");
  const cols = ["parcel_id", state.column].filter((c, i, a) => a.indexOf(c) === i).join(",");
  const simplify = (state.view.scale * 0.5).toFixed(3);
  document.body.dataset.state = "loading";
  try {
    const fc = await api(`/api/parcels?bbox=${bbox}&limit=${PAGE}&columns=${cols}&simplify=${simplify}`);
    if (seq !== state.loadSeq) return;
    state.features = fc.features; state.matched = fc.numberMatched;
    $("status").textContent = fc.numberMatched > fc.numberReturned
      ? `${fc.numberReturned} of ${fc.numberMatched} parcels in view — zoom in to see all`
      : `${fc.numberMatched} parcels in view`;
  } catch (e) { $("status").textContent = `error: ${e.message}`; }
  draw();
  if (seq === state.loadSeq) document.body.dataset.state = "ready";
}
async function loadLegend() {
  if (!state.info.parcels) return;
  const lg = await api(`/api/legend?column=${encodeURIComponent(state.column)}&classes=7`);
  state.breaks = lg.breaks;
  const rows = [];
  for (let k = 0; k < lg.breaks.length - 1; k++) {
    rows.push(`<div class="row"><span class="sw" style="background:${PALETTE[k]}"></span>${fmtSig(lg.breaks[k])} – ${fmtSig(lg.breaks[k + 1])}</div>`);
  }
  const title = lg.name_zh ? `${esc(lg.name_zh)} <span class="en">${esc(lg.name_en || "")}</span> (${esc(lg.column)})` : esc(lg.column);
  const neg = lg.has_negative ? `<p class="note">负值 negative: parcels that lose the service (values &lt; 0 are in the first class).</p>` : "";
  $("parcel-legend").innerHTML = `<b>地块 parcels</b> · ${title} ${esc(lg.units || "")}${state.layer ? " (outlines only over a layer)" : rows.join("")}${neg}`;
}

// -- parcel card --------------------------------------------------------------------------
const CONTESTED = `<span title="有争议项 contested: counted in GEP, also shown without it">✱</span>`;
function productRow(p, valueAttrs = "") {
  const neg = p.value !== null && p.value < 0 ? " neg" : "";
  const negNote = neg ? ` <span title="负值：该服务的损失 negative: a loss of the service">(−)</span>` : "";
  const unpriced = p.value === null || p.value === undefined
    ? ` title="只报告实物量，不计价 reported, not valued (e.g. PM2.5 is part of PM10; or no price in the table)"` : "";
  return `<tr data-product="${esc(p.product)}" title="${esc(p.code || "")} ${esc(p.product)}"><td>${productLabel(p)}${p.contested ? " " + CONTESTED : ""}</td>
    <td>${fmt(p.qty, 3)} ${esc(p.qty_units || "")}</td><td class="value${neg}" ${valueAttrs}${unpriced} data-value="${p.value}">${fmt(p.value)}${negNote}</td></tr>`;
}
function catalogueTable(card) {
  const rows = card.products.map((p) => productRow(p));
  return `<table><thead><tr><th>产品 product</th><th>实物量 quantity</th><th>价值量 value (${esc(card.value_units)})</th></tr></thead>
    <tbody>${rows.join("")}
    <tr class="total"><td>GEP 生态产品总值</td><td></td><td id="card-gep" data-value="${card.gep}">${fmt(card.gep)}</td></tr>
    <tr><td>不含有争议项 excl. contested (✱)</td><td></td><td>${fmt(card.gep_excl_contested)}</td></tr>
    <tr><td>每公顷 per ha</td><td></td><td>${fmt(card.gep_per_ha)}</td></tr></tbody></table>`;
}
function showCard(feature) {
  const c = feature.catalogue;
  $("card").innerHTML = `<p><b id="card-id">${esc(c.parcel_id)}</b> ${esc(c.name || "")} · ${fmt(c.area_ha)} ha ·
    ${esc(c.region)} ${esc(c.year)}, 价格年份 prices of ${esc(c.price_year)}</p>${catalogueTable(c)}`;
}
async function clickParcel(x, y) {
  try {
    const f = await api(`/api/parcel-at?x=${x}&y=${y}`);
    state.selected = f; showCard(f);
  } catch (e) {
    state.selected = null; $("card").innerHTML = `<p class="hint">${esc(e.message)}</p>`;
  }
  draw();
}

// -- footprints and sites -----------------------------------------------------------------
function gridFeature(geometry, name) {
  return { type: "Feature", properties: { name },
           crs: { type: "name", properties: { name: state.info.crs } }, geometry };
}
function siteTable(r) {
  const rows = r.products.map((p) => productRow(p));
  const partial = r.warning
    ? `<p class="hint">部分覆盖 partial coverage (${(100 * r.covered_share).toFixed(1)} %): ${esc(r.warning)}</p>` : "";
  return `<p><b>${esc(r.name)}</b>: ${fmt(r.area_ha)} ha (${fmt(r.area_in_region_ha)} ha with values), ${r.parcels_total} parcel(s) cut</p>${partial}
    <table><thead><tr><th>产品 product</th><th>实物量损失 quantity lost</th><th>价值量损失 value lost (CNY)</th></tr></thead><tbody>${rows.join("")}
    <tr class="total"><td>GEP 损失 GEP lost</td><td></td><td id="site-gep" data-value="${r.gep_lost}">${fmt(r.gep_lost)}</td></tr>
    <tr><td>不含有争议项 excl. contested (✱)</td><td></td><td>${fmt(r.gep_lost_excl_contested)}</td></tr>
    <tr><td>每公顷 per ha</td><td></td><td>${fmt(r.gep_lost_per_ha)}</td></tr></tbody></table>
    <div class="buttons"><button id="add-site">加入比选 Add to comparison</button></div>`;
}
async function valueFootprint(feature, crsParam) {
  $("site-result").innerHTML = `<p class="hint">valuing…</p>`;
  document.body.dataset.site = "busy";
  try {
    const q = crsParam ? `&crs=${encodeURIComponent(crsParam)}` : "";
    const r = await api(`/api/site?geometry=true${q}`, { method: "POST", headers: { "Content-Type": "application/json" },
                                                        body: JSON.stringify(feature) });
    state.footprint = r.geometry; state.lastSite = { request: feature, result: r };
    $("site-result").innerHTML = siteTable(r);
    $("add-site").onclick = () => addSite(r);
    $("report").disabled = false;
  } catch (e) {
    state.lastSite = { request: feature, error: e.message };
    $("site-result").innerHTML = `<p class="error" id="site-error">${esc(e.message)}</p>`;
  }
  document.body.dataset.site = "done";
  draw();
}
function addSite(r) {
  const name = `site ${state.sites.length + 1}`;
  state.sites.push({ name, geometry: r.geometry, gep: r.gep_lost });
  $("sites").innerHTML = state.sites.map((s) => `<li>${esc(s.name)} — ${fmt(s.gep)} CNY</li>`).join("");
  $("compare").disabled = state.sites.length < 2;
}
function reportCollection() {  // the last footprint valued first, then the candidates
  const feats = [];
  if (state.lastSite && state.lastSite.result && state.lastSite.result.geometry) {
    feats.push({ type: "Feature", properties: { name: state.lastSite.result.name }, geometry: state.lastSite.result.geometry });
  }
  for (const s of state.sites) if (!feats.some((f) => f.geometry === s.geometry)) feats.push({ type: "Feature", properties: { name: s.name }, geometry: s.geometry });
  return { type: "FeatureCollection", crs: { type: "name", properties: { name: state.info.crs } }, features: feats };
}
async function openReport() {
  const res = await fetch("/api/report", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(reportCollection()) });
  const html = await res.text();
  if (!res.ok) { $("ranking").innerHTML = `<p class="error">${esc(html)}</p>`; return; }
  state.lastReport = html;
  window.open(URL.createObjectURL(new Blob([html], { type: "text/html" })), "_blank");
}
async function compareSites() {
  const fc = { type: "FeatureCollection", crs: { type: "name", properties: { name: state.info.crs } },
               features: state.sites.map((s) => ({ type: "Feature", properties: { name: s.name }, geometry: s.geometry })) };
  try {
    const r = await api("/api/compare", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(fc) });
    const rows = r.ranking.map((x) => `<tr><td>${x.rank}. ${esc(x.site)}</td><td>${fmt(x.area_ha)}</td>
      <td data-value="${x.gep_lost}">${fmt(x.gep_lost)}</td><td>${fmt(x.gep_lost_per_ha)}</td></tr>`);
    $("ranking").innerHTML = `<table id="ranking-table"><thead><tr><th>site</th><th>ha</th><th>GEP lost (CNY)</th><th>per ha</th></tr></thead>
      <tbody>${rows.join("")}</tbody></table>`;
  } catch (e) { $("ranking").innerHTML = `<p class="error">${esc(e.message)}</p>`; }
}
function setDrawing(on) {
  state.drawing = on; state.vertices = [];
  canvas.classList.toggle("drawing", on);
  $("draw").disabled = on; $("finish").disabled = !on;
  draw();
}
function finishDrawing() {
  const v = state.vertices;
  if (v.length < 3) { $("site-result").innerHTML = `<p class="error">a footprint needs at least 3 corners</p>`; return; }
  const ring = v.map(([x, y]) => [x, y]).concat([[v[0][0], v[0][1]]]);
  setDrawing(false);
  valueFootprint(gridFeature({ type: "Polygon", coordinates: [ring] }, "drawn footprint"));
}

// -- events -------------------------------------------------------------------------------
let drag = null;
canvas.addEventListener("mousedown", (e) => { drag = { x: e.offsetX, y: e.offsetY, cx: state.view.cx, cy: state.view.cy, moved: false }; });
window.addEventListener("mousemove", (e) => {
  if (!drag) return;
  const r = canvas.getBoundingClientRect();
  const dx = e.clientX - r.left - drag.x, dy = e.clientY - r.top - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
  if (drag.moved) { state.view.cx = drag.cx - dx * state.view.scale; state.view.cy = drag.cy + dy * state.view.scale; draw(); }
});
window.addEventListener("mouseup", (e) => {
  if (!drag) return;
  const moved = drag.moved; drag = null;
  if (moved) { scheduleLoad(); return; }
  if (e.target !== canvas) return;
  const [x, y] = screenToWorld(e.offsetX, e.offsetY);
  if (state.drawing) { state.vertices.push([x, y]); draw(); } else clickParcel(x, y);
});
canvas.addEventListener("dblclick", (e) => { if (state.drawing) { e.preventDefault(); state.vertices.pop(); finishDrawing(); } });
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const [x, y] = screenToWorld(e.offsetX, e.offsetY);
  const k = e.deltaY < 0 ? 1 / 1.25 : 1.25;
  state.view.scale *= k;
  state.view.cx = x - (x - state.view.cx) * k; state.view.cy = y - (y - state.view.cy) * k;
  scheduleLoad();
}, { passive: false });
$("zoom-in").onclick = () => { state.view.scale /= 1.5; scheduleLoad(); };
$("zoom-out").onclick = () => { state.view.scale *= 1.5; scheduleLoad(); };
$("zoom-fit").onclick = () => { fit(state.info.parcel_extent || state.info.bounds); scheduleLoad(); };
$("draw").onclick = () => setDrawing(true);
$("finish").onclick = finishDrawing;
$("clear").onclick = () => { setDrawing(false); state.footprint = null; $("site-result").innerHTML = ""; draw(); };
$("compare").onclick = compareSites;
$("report").onclick = openReport;
$("layer").addEventListener("change", async (e) => {
  state.layer = e.target.value; state.raster = null;
  await loadRasterLegend().catch((err) => { $("status").textContent = `error: ${err.message}`; });
  await loadLegend(); loadRaster(); draw();
});
$("upload").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  let obj;
  try { obj = JSON.parse(await file.text()); } catch (err) {
    $("site-result").innerHTML = `<p class="error">${esc(file.name)}: not valid JSON</p>`; return;
  }
  if (obj.type === "Feature" || obj.type === "FeatureCollection") {
    obj.properties = obj.properties || {}; if (!obj.properties.name) obj.properties.name = file.name.replace(/\.(geo)?json$/i, "");
  }
  await valueFootprint(obj);
  e.target.value = "";
});
$("colour-by").addEventListener("change", async (e) => { state.column = e.target.value; await loadLegend(); scheduleLoad(); });
window.addEventListener("resize", scheduleLoad);

async function start() {
  try {
    state.info = await api("/api/info");
  } catch (e) { $("status").textContent = `error: ${e.message}`; return; }
  const i = state.info;
  $("title").textContent = `生态产品总值 GEP · ${i.region_name || i.region} ${i.year ?? ""} (价格年份 prices of ${i.price_year ?? "?"})`;
  const labels = { gep_per_ha: "每公顷 GEP per ha", gep: "GEP 生态产品总值", gep_excl_contested: "GEP 不含有争议项 excl. contested" };
  for (const p of i.products) labels[`${p.product}_value`] = p.name_zh ? `${p.name_zh} ${p.name_en || ""} 价值量` : `${p.product}_value`;
  const numeric = ["gep_per_ha", "gep", "gep_excl_contested"].concat(i.products.map((p) => `${p.product}_value`))
    .filter((c) => i.parcel_columns.includes(c));
  $("colour-by").innerHTML = numeric.map((c) => `<option value="${esc(c)}">${esc(labels[c] || c)}</option>`).join("");
  try {
    const ls = await api("/api/layers");
    const group = (kind, label) => {
      const opts = ls.layers.filter((l) => l.kind === kind).map((l) => `<option value="${esc(l.id)}">${esc(l.name_zh || l.id)} · ${esc(l.name_en || "")} (${esc(l.units)})</option>`);
      return opts.length ? `<optgroup label="${label}">${opts.join("")}</optgroup>` : "";
    };
    $("layer").innerHTML = `<option value="">— 无 none —</option>` + group("value", "价值量 value (CNY)") + group("physical", "实物量 quantity") + group("output", "其他输出 other outputs (not in GEP)");
    $("zones").innerHTML = ls.zone_sets.map((z) => `<label><input type="checkbox" data-zone="${esc(z.id)}"> ${esc(z.title)}</label>`).join("");
    $("zones").querySelectorAll("input").forEach((cb) => { state.zoneOn[cb.dataset.zone] = false; cb.addEventListener("change", () => toggleZones(cb.dataset.zone, cb.checked)); });
  } catch (e) { $("status").textContent = `error: ${e.message}`; }
  state.column = numeric[0] || "gep_per_ha";
  if (!i.can_value_sites) { $("draw").disabled = true; $("upload").disabled = true; }
  fit(i.parcel_extent || i.bounds);
  await loadLegend().catch((e) => { $("status").textContent = `error: ${e.message}`; });
  await loadParcels();
}

// for tests and scripting: map coordinates ↔ canvas pixels, and the last site valued
window.ecoMap = { worldToScreen, screenToWorld, state, fit, reload: loadParcels, reportCollection };
start();
