// Map page of the ecoraster query API: parcels drawn on a canvas in the grid CRS (no base
// map, no third-party code), a value legend, a parcel card on click, a footprint tool
// (draw or upload GeoJSON) that asks /api/site for the value lost, and a comparison of
// candidate sites via /api/compare.
"use strict";

const PALETTE = ["#f7fcf5", "#d9f0d3", "#addd8e", "#78c679", "#41ab5d", "#238443", "#006837",
                 "#004529", "#00331f", "#002416", "#00170e", "#000c07"];
const PAGE = 5000;           // parcels per request
const state = {
  info: null, view: { cx: 0, cy: 0, scale: 1 }, features: [], matched: 0,
  column: "gep_per_ha", breaks: [], selected: null, drawing: false, vertices: [],
  footprint: null, sites: [], lastSite: null, loadSeq: 0,
};
const $ = (id) => document.getElementById(id);
const canvas = $("map");
const ctx = canvas.getContext("2d");

function fmt(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  return Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
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
  if (state.info) {  // the run grid's extent
    const [l, b, r, t] = state.info.bounds;
    const [x0, y0] = worldToScreen(l, t), [x1, y1] = worldToScreen(r, b);
    ctx.strokeStyle = "#9aa"; ctx.setLineDash([4, 4]); ctx.strokeRect(x0, y0, x1 - x0, y1 - y0); ctx.setLineDash([]);
  }
  const thin = state.view.scale > 0 && state.features.length > 2000;
  for (const f of state.features) {
    ctx.beginPath(); traceGeometry(f.geometry);
    ctx.fillStyle = colourOf(f.properties[state.column]); ctx.fill("evenodd");
    if (!thin) { ctx.strokeStyle = "rgba(40,60,50,.45)"; ctx.lineWidth = 0.6; ctx.stroke(); }
  }
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
function scheduleLoad() { clearTimeout(loadTimer); loadTimer = setTimeout(loadParcels, 120); draw(); }
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
    rows.push(`<div class="row"><span class="sw" style="background:${PALETTE[k]}"></span>${fmt(lg.breaks[k], 0)} – ${fmt(lg.breaks[k + 1], 0)}</div>`);
  }
  $("legend").innerHTML = `<b>${esc(lg.column)}</b> ${esc(lg.units || "")}${rows.join("")}`;
}

// -- parcel card --------------------------------------------------------------------------
function catalogueTable(card) {
  const rows = card.products.map((p) => `<tr data-product="${esc(p.product)}"><td>${esc(p.product)}${p.contested ? " *" : ""}</td>
    <td>${fmt(p.qty, 3)} ${esc(p.qty_units || "")}</td><td class="value" data-value="${p.value}">${fmt(p.value)}</td></tr>`);
  return `<table><thead><tr><th>product 产品</th><th>quantity 实物量</th><th>value 价值量 (${esc(card.value_units)})</th></tr></thead>
    <tbody>${rows.join("")}
    <tr class="total"><td>GEP</td><td></td><td id="card-gep" data-value="${card.gep}">${fmt(card.gep)}</td></tr>
    <tr><td>excl. contested (*)</td><td></td><td>${fmt(card.gep_excl_contested)}</td></tr>
    <tr><td>per ha</td><td></td><td>${fmt(card.gep_per_ha)}</td></tr></tbody></table>`;
}
function showCard(feature) {
  const c = feature.catalogue;
  $("card").innerHTML = `<p><b id="card-id">${esc(c.parcel_id)}</b> ${esc(c.name || "")} · ${fmt(c.area_ha)} ha ·
    ${esc(c.region)} ${esc(c.year)}, prices of ${esc(c.price_year)}</p>${catalogueTable(c)}`;
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
  const rows = r.products.map((p) => `<tr data-product="${esc(p.product)}"><td>${esc(p.product)}${p.contested ? " *" : ""}</td>
    <td>${fmt(p.qty, 3)} ${esc(p.qty_units || "")}</td><td data-value="${p.value}">${fmt(p.value)}</td></tr>`);
  return `<p><b>${esc(r.name)}</b>: ${fmt(r.area_ha)} ha (${fmt(r.area_in_region_ha)} ha with values), ${r.parcels_total} parcel(s) cut</p>
    <table><thead><tr><th>product</th><th>quantity lost</th><th>value lost (CNY)</th></tr></thead><tbody>${rows.join("")}
    <tr class="total"><td>GEP lost</td><td></td><td id="site-gep" data-value="${r.gep_lost}">${fmt(r.gep_lost)}</td></tr>
    <tr><td>excl. contested (*)</td><td></td><td>${fmt(r.gep_lost_excl_contested)}</td></tr>
    <tr><td>per ha</td><td></td><td>${fmt(r.gep_lost_per_ha)}</td></tr></tbody></table>
    <div class="buttons"><button id="add-site">Add to comparison</button></div>`;
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
  $("title").textContent = `GEP · ${i.region_name || i.region} ${i.year ?? ""} (prices of ${i.price_year ?? "?"})`;
  const numeric = ["gep_per_ha", "gep", "gep_excl_contested"].concat(i.products.map((p) => `${p.product}_value`))
    .filter((c) => i.parcel_columns.includes(c));
  $("colour-by").innerHTML = numeric.map((c) => `<option value="${esc(c)}">${esc(c)}</option>`).join("");
  state.column = numeric[0] || "gep_per_ha";
  if (!i.can_value_sites) { $("draw").disabled = true; $("upload").disabled = true; }
  fit(i.parcel_extent || i.bounds);
  await loadLegend().catch((e) => { $("status").textContent = `error: ${e.message}`; });
  await loadParcels();
}

// for tests and scripting: map coordinates ↔ canvas pixels, and the last site valued
window.ecoMap = { worldToScreen, screenToWorld, state, fit, reload: loadParcels };
start();
