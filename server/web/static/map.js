// Map pieces on top of Leaflet (vendored: /static/vendor/leaflet/leaflet.js, window.L):
// the built-in vector basemap of the road graph and a canvas layer for thousands of live crews.
/* global L */
import { api } from "./console.js";

const TILE = 256;

function project(lon, lat, zoom) {
  const scale = TILE * 2 ** zoom;
  const sin = Math.sin((lat * Math.PI) / 180);
  return [((lon + 180) / 360) * scale,
    (0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI)) * scale];
}

// road classes: [casing width, fill width, fill colour]; drawn in this order (big roads on top)
const ROAD_STYLE = [
  ["service", 2.5, 1.5, "#ffffff"], ["living_street", 3, 2, "#ffffff"],
  ["unclassified", 3.5, 2.5, "#ffffff"], ["residential", 3.5, 2.5, "#ffffff"],
  ["tertiary_link", 4, 3, "#ffffff"], ["tertiary", 5, 3.5, "#ffffff"],
  ["secondary_link", 4.5, 3, "#f7fabf"], ["secondary", 6, 4.5, "#f7fabf"],
  ["primary_link", 5, 3.5, "#fcd6a4"], ["primary", 7, 5, "#fcd6a4"],
  ["trunk_link", 5, 3.5, "#f9b29c"], ["trunk", 7.5, 5.5, "#f9b29c"],
  ["motorway_link", 5, 3.5, "#e892a2"], ["motorway", 8, 6, "#e892a2"],
];
const STYLE_BY_CLASS = new Map(ROAD_STYLE.map((s, i) => [s[0], { order: i, casing: s[1], width: s[2], color: s[3] }]));
const OTHER = { order: -1, casing: 2, width: 1, color: "#ffffff" };

/** The road graph as vector tiles, drawn on canvas: a basemap that works offline. */
function roadLayer(fetchTile, options = {}) {
  const Roads = L.GridLayer.extend({
    createTile(coords, done) {
      const tile = document.createElement("canvas");
      const ratio = window.devicePixelRatio || 1;
      tile.width = TILE * ratio;
      tile.height = TILE * ratio;
      fetchTile(coords.z, coords.x, coords.y)
        .then((data) => { drawRoads(tile, data, coords, ratio); done(null, tile); })
        .catch((error) => done(error, tile));
      return tile;
    },
  });
  return new Roads({ tileSize: TILE, className: "roads-basemap", ...options });
}

/**
 * The map in #map of a console page, from `GET /console/config`: the configured tile server or
 * else the road basemap, fitted to the data's bounds; the footer's #attribution names the source.
 * `options` are Leaflet's map options on top of the shared ones.
 */
export function baseMap(cfg, options = {}) {
  const map = L.map("map", { preferCanvas: true, attributionControl: false, minZoom: cfg.min_zoom,
    maxZoom: cfg.max_zoom, ...options });
  if (cfg.tile_url) {
    L.tileLayer(cfg.tile_url, { maxZoom: cfg.max_zoom }).addTo(map);
  } else {
    roadLayer((z, x, y) => api("GET", `/console/basemap/${z}/${x}/${y}.json`),
      { minZoom: cfg.min_zoom, maxZoom: cfg.max_zoom }).addTo(map);
  }
  document.getElementById("attribution").textContent = cfg.attribution;
  const b = cfg.bounds;
  if (b) map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { maxZoom: 15 });
  else map.setView([60.17, 24.94], 13);
  return map;
}

function drawRoads(tile, data, coords, ratio) {
  const ctx = tile.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.fillStyle = "#eef0ea";
  ctx.fillRect(0, 0, TILE, TILE);
  const ox = coords.x * TILE;
  const oy = coords.y * TILE;
  const widen = coords.z >= 16 ? 1.6 : coords.z >= 14 ? 1 : 0.6;
  const roads = data.roads.map(([cls, name, line]) => ({ s: STYLE_BY_CLASS.get(cls) || OTHER, name, line }))
    .sort((a, b) => a.s.order - b.s.order);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const path = (line) => {
    ctx.beginPath();
    line.forEach(([lon, lat], i) => {
      const [x, y] = project(lon, lat, coords.z);
      if (i) ctx.lineTo(x - ox, y - oy);
      else ctx.moveTo(x - ox, y - oy);
    });
  };
  ctx.strokeStyle = "#b9bcb4";
  for (const r of roads) { ctx.lineWidth = r.s.casing * widen; path(r.line); ctx.stroke(); }
  for (const r of roads) { ctx.strokeStyle = r.s.color; ctx.lineWidth = r.s.width * widen; path(r.line); ctx.stroke(); }
}

const SPRITES = new Map();

/** A crew's marker drawn once per colour, freshness, heading (10° steps) and size. */
function crewSprite(color, stale, heading, r, ratio) {
  const dir = heading === null || heading === undefined ? -1 : Math.round(heading / 10) % 36;
  const key = `${color}|${stale ? 1 : 0}|${dir}|${r}|${ratio}`;
  let sprite = SPRITES.get(key);
  if (sprite) return sprite;
  const size = Math.ceil(r * 3.2);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = Math.ceil(size * ratio);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.translate(size / 2, size / 2);
  ctx.globalAlpha = stale ? 0.4 : 1;
  ctx.fillStyle = color;
  ctx.strokeStyle = "#ffffff";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  if (dir < 0) {
    ctx.arc(0, 0, r * 0.75, 0, 2 * Math.PI);
  } else {
    ctx.rotate((dir * 10 * Math.PI) / 180);
    // an arrow pointing up (north) before rotation: tip, right, notch, left
    ctx.moveTo(0, -r * 1.3);
    ctx.lineTo(r * 0.85, r);
    ctx.lineTo(0, r * 0.45);
    ctx.lineTo(-r * 0.85, r);
    ctx.closePath();
  }
  ctx.fill();
  ctx.stroke();
  sprite = Object.assign(canvas, { size, half: size / 2 });
  SPRITES.set(key, sprite);
  return sprite;
}

export const CREW_COLORS = {
  available: "#1e8e3e", assigned: "#e37400", en_route: "#1a73e8", on_site: "#8e24aa", offline: "#80868b",
};

/**
 * Crews on one canvas over the map: an arrow along the heading (a dot without one), coloured by
 * status, faded when the position is stale. Redraws at most once per animation frame.
 */
export const CrewLayer = L.Layer.extend({
  initialize(options = {}) {
    L.setOptions(this, options);
    this.crews = new Map();
    this.highlight = new Set();
    this.frame = 0;
  },

  onAdd(map) {
    this.map = map;
    if (!map.getPane("crews")) {
      map.createPane("crews");
      map.getPane("crews").style.zIndex = 450;
      map.getPane("crews").style.pointerEvents = "none";
    }
    this.canvas = L.DomUtil.create("canvas", "crew-canvas leaflet-zoom-hide");
    map.getPane("crews").appendChild(this.canvas);
    map.on("move moveend zoomend resize viewreset", this.schedule, this);
    map.on("click", this.onClick, this);
    this.resize();
    this.schedule();
  },

  onRemove(map) {
    map.off("move moveend zoomend resize viewreset", this.schedule, this);
    map.off("click", this.onClick, this);
    this.canvas.remove();
  },

  set(items) {
    for (const c of items) {
      if (c.active === false || c.lon === null) this.crews.delete(c.id);
      else this.crews.set(c.id, c);
    }
    this.schedule();
  },

  setHighlight(ids) {
    this.highlight = new Set(ids);
    this.schedule();
  },

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  },

  resize() {
    const size = this.map.getSize();
    const ratio = window.devicePixelRatio || 1;
    if (this.canvas.width !== size.x * ratio || this.canvas.height !== size.y * ratio) {
      this.canvas.width = size.x * ratio;
      this.canvas.height = size.y * ratio;
      this.canvas.style.width = `${size.x}px`;
      this.canvas.style.height = `${size.y}px`;
    }
  },

  draw() {
    if (!this.map) return;
    const started = performance.now();
    this.resize();
    const map = this.map;
    L.DomUtil.setPosition(this.canvas, map.containerPointToLayerPoint([0, 0]));
    const ctx = this.canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const size = map.getSize();
    ctx.clearRect(0, 0, size.x, size.y);
    const zoom = map.getZoom();
    const r = zoom >= 16 ? 9 : zoom >= 14 ? 7 : 5;
    const labels = zoom >= 15 && this.crews.size <= 400; // thousands of names are noise (and slow)
    ctx.font = "12px 'Noto Sans CJK SC', 'Noto Sans', sans-serif";
    ctx.textBaseline = "middle";
    this.visible = [];
    // each crew is a pre-drawn sprite (colour × freshness × heading in 10° steps): thousands of
    // crews cost thousands of drawImage calls, not thousands of paths
    const labelled = [];
    for (const c of this.crews.values()) {
      const p = map.latLngToContainerPoint([c.lat, c.lon]);
      if (p.x < -20 || p.y < -20 || p.x > size.x + 20 || p.y > size.y + 20) continue;
      this.visible.push([p.x, p.y, c]);
      const sprite = crewSprite(CREW_COLORS[c.status] || "#555", c.stale, c.heading, r, ratio);
      // whole pixels: a sprite copied 1:1 needs no filtering (much cheaper in software canvas)
      const x = Math.round(p.x - sprite.half);
      const y = Math.round(p.y - sprite.half);
      if (ratio === 1) ctx.drawImage(sprite, x, y);
      else ctx.drawImage(sprite, x, y, sprite.size, sprite.size);
      if (labels || this.highlight.has(c.id)) labelled.push([p, c]);
    }
    ctx.globalAlpha = 1;
    for (const [p, c] of labelled) {
      if (this.highlight.has(c.id)) {
        ctx.strokeStyle = "#111";
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(p.x, p.y, r * 1.8, 0, 2 * Math.PI);
        ctx.stroke();
      }
      ctx.lineWidth = 3;
      ctx.strokeStyle = "rgba(255,255,255,0.9)";
      ctx.strokeText(c.name, p.x + r + 4, p.y);
      ctx.fillStyle = "#1b2430";
      ctx.fillText(c.name, p.x + r + 4, p.y);
    }
    ctx.globalAlpha = 1;
    if (this.options.onDraw) this.options.onDraw(this.visible.length, performance.now() - started);
  },

  /** The crew under a container point (within 12 px), or null. */
  crewAt(point) {
    let best = null;
    let bestD = 144;
    for (const [x, y, c] of this.visible || []) {
      const d = (x - point.x) ** 2 + (y - point.y) ** 2;
      if (d < bestD) { best = c; bestD = d; }
    }
    return best;
  },

  onClick(event) {
    const crew = this.crewAt(event.containerPoint);
    if (crew && this.options.onCrewClick) this.options.onCrewClick(crew, event.latlng);
  },
});
