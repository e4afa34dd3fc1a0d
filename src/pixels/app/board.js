// The studio's canvas: the photo with the strength map as a translucent overlay, painted in photo pixels.
//
// Runs as the `js_on_load` of a gr.HTML component (see board.py): `element` is the component's root,
// `props.value` its value, `trigger(name, data)` sends an event to the server, `watch` observes the value.
//
// The value the server sends: {photo, map, width, height, serial, target, boxes}; `photo` and `map` are
// data URLs (the map an 8-bit gray PNG of the photo's size), or null for "keep yours" (then only the boxes
// changed). What this script writes back, and sends with every event: {map, width, height, serial, target,
// strokes} with the map as painted here, so the server always reads the map the user sees.
//
// A stroke mixes the brush's level into the map: map += (level - map) * coverage * opacity, where coverage is
// 1 inside the hardness radius and falls smoothly to 0 at the brush's edge, taken as the largest over the
// stroke's dabs (a stroke does not build up over itself).
(() => {
  const $ = (selector) => element.querySelector(selector);
  const root = $(".pxb");
  const view = $(".pxb-view");
  const stage = $(".pxb-stage");
  const ctx = view.getContext("2d");
  const TINT = [255, 40, 40];
  const OVERLAY_ALPHA = 0.6; // the overlay's opacity at strength 100 %
  const MAX_UNDO_BYTES = 96 * 1024 * 1024;
  const state = {
    width: 0, height: 0, map: null, photo: null, overlay: null, overlayCtx: null, overlayData: null,
    serial: null, target: "strength", strokes: 0, boxes: [], loading: 0,
    scale: 1, ox: 0, oy: 0, fitted: true,
    tool: "brush", showMap: false, spaceDown: false,
    undo: [], redo: [], undoBytes: 0, stacks: {}, photoKey: null,
    picks: { clicks: [], boxes: [] },  // the Select tool's clicks ([x, y, negative]) and boxes, sent whole each time
    pointer: null, drag: null, written: null,
  };
  const inputs = {
    level: $(".pxb-level"), size: $(".pxb-size"), hardness: $(".pxb-hardness"), opacity: $(".pxb-opacity"),
  };
  const brush = () => ({
    level: Math.round((Number(inputs.level.value) * 255) / 100),
    size: Number(inputs.size.value),
    hardness: Number(inputs.hardness.value) / 100,
    opacity: Number(inputs.opacity.value) / 100,
  });

  // -- readouts ------------------------------------------------------------------------------------
  function readouts() {
    $(".pxb-level-out").textContent = `${inputs.level.value} %`;
    $(".pxb-size-out").textContent = `${inputs.size.value} px`;
    $(".pxb-hardness-out").textContent = `${inputs.hardness.value} %`;
    $(".pxb-opacity-out").textContent = `${inputs.opacity.value} %`;
    $(".pxb-zoom-out").textContent = `${Math.round(state.scale * 100)} %`;
    element.querySelectorAll("[data-tool]").forEach((b) => b.classList.toggle("pxb-on", b.dataset.tool === state.tool));
    $(".pxb-showmap").classList.toggle("pxb-on", state.showMap);
    $(".pxb-undo").disabled = !state.undo.length;
    $(".pxb-redo").disabled = !state.redo.length;
    root.dataset.tool = state.tool;
    root.dataset.zoom = String(state.scale);
    root.dataset.strokes = String(state.strokes);
    root.dataset.ready = state.map && !state.loading ? "1" : "0";
  }
  Object.values(inputs).forEach((input) => input.addEventListener("input", () => { readouts(); draw(); }));

  // -- the overlay -----------------------------------------------------------------------------------
  function paintOverlay(x0, y0, x1, y1) {
    const { map, overlayData, width } = state;
    const data = overlayData.data;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const p = y * width + x, q = p * 4, v = map[p];
        if (state.showMap) {
          data[q] = data[q + 1] = data[q + 2] = v; data[q + 3] = 255;
        } else {
          data[q] = TINT[0]; data[q + 1] = TINT[1]; data[q + 2] = TINT[2];
          data[q + 3] = Math.round(v * OVERLAY_ALPHA);
        }
      }
    }
    state.overlayCtx.putImageData(overlayData, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  // -- drawing -----------------------------------------------------------------------------------------
  function resize() {
    const rect = stage.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    view.width = Math.max(1, Math.round(rect.width * dpr));
    view.height = Math.max(1, Math.round(rect.height * dpr));
    if (state.fitted) fit(); else draw();
  }
  function draw() {
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, view.width, view.height);
    if (!state.map || !state.photo) return;
    ctx.setTransform(dpr * state.scale, 0, 0, dpr * state.scale, dpr * state.ox, dpr * state.oy);
    ctx.imageSmoothingEnabled = state.scale < 1;
    ctx.drawImage(state.photo, 0, 0, state.width, state.height);
    ctx.drawImage(state.overlay, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    drawBoxes();
    drawCursor();
  }
  function screenOf(x, y) { return [state.ox + x * state.scale, state.oy + y * state.scale]; }
  function drawBoxes() {
    ctx.lineWidth = 2;
    ctx.font = "12px sans-serif";
    const boxes = state.drag && state.drag.kind === "box" ? state.drag.boxes : state.boxes;
    for (const b of boxes) {
      const [x, y, w, h] = b.box;
      const [sx, sy] = screenOf(x, y);
      const sw = w * state.scale, sh = h * state.scale;
      const picture = b.image && thumbnail(b.image);
      if (picture && picture.complete && b.inner && b.sent) {  // the exemplar as it will be fitted, see-through
        const kx = w / b.sent[2], ky = h / b.sent[3];  // a box being resized stretches it until the server's next one
        const [ix, iy, iw, ih] = b.inner;
        ctx.save();
        ctx.beginPath(); ctx.rect(sx, sy, sw, sh); ctx.clip();
        ctx.globalAlpha = 0.55;
        ctx.drawImage(picture, sx + ix * kx * state.scale, sy + iy * ky * state.scale, iw * kx * state.scale, ih * ky * state.scale);
        ctx.restore();
      }
      ctx.setLineDash(b.placed ? [] : [6, 4]);
      ctx.strokeStyle = "#ffd400";
      ctx.strokeRect(sx, sy, sw, sh);
      ctx.setLineDash([]);
      ctx.fillStyle = "#ffd400";
      ctx.fillText(`exemplar ${b.slot}: ${x}, ${y}, ${w}x${h}`, sx + 4, sy + 14);
      if (state.tool === "move") {
        for (const [cx, cy] of [[sx, sy], [sx + sw, sy], [sx, sy + sh], [sx + sw, sy + sh]]) {
          ctx.fillRect(cx - 5, cy - 5, 10, 10);
        }
      }
    }
    for (const [x, y, negative] of state.picks.clicks) {  // the Select tool's clicks: green on, red left out
      const [sx, sy] = screenOf(x + 0.5, y + 0.5);
      ctx.beginPath(); ctx.arc(sx, sy, 5, 0, 2 * Math.PI);
      ctx.fillStyle = negative ? "#ef4444" : "#22c55e"; ctx.fill();
      ctx.strokeStyle = "#ffffff"; ctx.stroke();
    }
    for (const [x, y, w, h] of state.picks.boxes) {
      const [sx, sy] = screenOf(x, y);
      ctx.setLineDash([6, 3]); ctx.strokeStyle = "#22c55e";
      ctx.strokeRect(sx, sy, w * state.scale, h * state.scale); ctx.setLineDash([]);
    }
    if (state.drag && (state.drag.kind === "rect" || state.drag.kind === "pick")) {
      const [x0, y0, x1, y1] = rectOf(state.drag);
      const [sx, sy] = screenOf(x0, y0);
      ctx.setLineDash([4, 3]);
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(sx, sy, (x1 - x0) * state.scale, (y1 - y0) * state.scale);
      ctx.setLineDash([]);
    }
  }
  const thumbnails = new Map();
  function thumbnail(url) {
    let picture = thumbnails.get(url);
    if (!picture) {
      if (thumbnails.size > 16) thumbnails.clear();
      picture = new Image();
      picture.onload = () => draw();
      picture.src = url;
      thumbnails.set(url, picture);
    }
    return picture;
  }
  function drawCursor() {
    if (!state.pointer || !["brush", "eraser"].includes(state.tool)) return;
    const r = (brush().size / 2) * state.scale;
    ctx.beginPath();
    ctx.arc(state.pointer[0], state.pointer[1], Math.max(r, 1), 0, 2 * Math.PI);
    ctx.strokeStyle = "rgba(255,255,255,0.9)";
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(state.pointer[0], state.pointer[1], Math.max(r * brush().hardness, 0.5), 0, 2 * Math.PI);
    ctx.strokeStyle = "rgba(0,0,0,0.6)";
    ctx.lineWidth = 1;
    ctx.stroke();
  }

  // -- zoom and pan ------------------------------------------------------------------------------------
  function stageSize() { const r = stage.getBoundingClientRect(); return [r.width, r.height]; }
  function fit() {
    if (!state.width) return;
    const [w, h] = stageSize();
    state.scale = Math.min(w / state.width, h / state.height);
    state.ox = (w - state.width * state.scale) / 2;
    state.oy = (h - state.height * state.scale) / 2;
    state.fitted = true;
    readouts(); draw();
  }
  function zoomTo(scale, sx, sy) {
    // the photo point under (sx, sy) (the stage's centre by default) stays where it is
    const [w, h] = stageSize();
    if (sx === undefined) { sx = w / 2; sy = h / 2; }
    scale = Math.min(32, Math.max(0.02, scale));
    const px = (sx - state.ox) / state.scale, py = (sy - state.oy) / state.scale;
    state.scale = scale;
    state.ox = sx - px * scale;
    state.oy = sy - py * scale;
    state.fitted = false;
    readouts(); draw();
  }
  function actual(scale) {
    // `scale` photo pixels per screen pixel, the photo centred
    const [w, h] = stageSize();
    state.scale = scale;
    state.ox = (w - state.width * scale) / 2;
    state.oy = (h - state.height * scale) / 2;
    state.fitted = false;
    readouts(); draw();
  }

  // -- painting -----------------------------------------------------------------------------------------
  function photoPoint(event) {
    const rect = view.getBoundingClientRect();
    const sx = event.clientX - rect.left, sy = event.clientY - rect.top;
    return [sx, sy, (sx - state.ox) / state.scale, (sy - state.oy) / state.scale];
  }
  function beginStroke(x, y) {
    const b = brush();
    state.drag = {
      kind: "stroke", level: state.tool === "eraser" ? 0 : b.level, b, before: state.map.slice(),
      coverage: new Uint8Array(state.width * state.height), last: [x, y], bbox: null,
    };
    dab(x, y);
  }
  function dab(cx, cy) {
    const d = state.drag, { b } = d, { width, height, map } = state;
    const r = Math.max(b.size / 2, 0.5), inner = r * b.hardness;
    const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(width, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(height, Math.ceil(cy + r));
    if (x0 >= x1 || y0 >= y1) return;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const dist = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
        let c;
        if (dist <= inner) c = 1;
        else if (dist >= r) c = 0;
        else { const t = (r - dist) / (r - inner); c = t * t * (3 - 2 * t); }
        const cov = Math.round(c * 255);
        const p = y * width + x;
        if (cov <= d.coverage[p]) continue;
        d.coverage[p] = cov;
        const before = d.before[p];
        map[p] = Math.round(before + (d.level - before) * (cov / 255) * b.opacity);
      }
    }
    d.bbox = d.bbox ? [Math.min(d.bbox[0], x0), Math.min(d.bbox[1], y0), Math.max(d.bbox[2], x1), Math.max(d.bbox[3], y1)]
      : [x0, y0, x1, y1];
    paintOverlay(x0, y0, x1, y1);
  }
  function strokeTo(x, y) {
    const d = state.drag, [lx, ly] = d.last;
    const spacing = Math.max(0.5, d.b.size * 0.15);
    const steps = Math.ceil(Math.hypot(x - lx, y - ly) / spacing);
    for (let k = 1; k <= steps; k++) dab(lx + ((x - lx) * k) / steps, ly + ((y - ly) * k) / steps);
    d.last = [x, y];
  }
  function rectOf(d) {
    const clampX = (v) => Math.min(state.width, Math.max(0, Math.round(v)));
    const clampY = (v) => Math.min(state.height, Math.max(0, Math.round(v)));
    return [clampX(Math.min(d.x0, d.x)), clampY(Math.min(d.y0, d.y)), clampX(Math.max(d.x0, d.x)), clampY(Math.max(d.y0, d.y))];
  }
  function fillRect(d) {
    const [x0, y0, x1, y1] = rectOf(d);
    if (x1 <= x0 || y1 <= y0) return null;
    const b = brush(), { map, width } = state;
    const before = patchOf(x0, y0, x1, y1);
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const p = y * width + x;
        map[p] = Math.round(map[p] + (b.level - map[p]) * b.opacity);
      }
    }
    paintOverlay(x0, y0, x1, y1);
    return { x0, y0, x1, y1, before, after: patchOf(x0, y0, x1, y1) };
  }
  function patchOf(x0, y0, x1, y1) {
    const out = new Uint8ClampedArray((x1 - x0) * (y1 - y0));
    for (let y = y0; y < y1; y++) out.set(state.map.subarray(y * state.width + x0, y * state.width + x1), (y - y0) * (x1 - x0));
    return out;
  }
  function putPatch(patch, which) {
    const { x0, y0, x1, y1 } = patch, data = patch[which];
    for (let y = y0; y < y1; y++) state.map.set(data.subarray((y - y0) * (x1 - x0), (y - y0 + 1) * (x1 - x0)), y * state.width + x0);
    paintOverlay(x0, y0, x1, y1);
  }
  function pushUndo(entry) {
    state.undo.push(entry);
    state.undoBytes += entry.before.length * 2;
    state.redo = [];
    while (state.undoBytes > MAX_UNDO_BYTES && state.undo.length > 1) {
      const old = state.undo.shift();
      state.undoBytes -= old.before.length * 2;
    }
  }
  function endStroke() {
    const d = state.drag;
    state.drag = null;
    if (!d.bbox) return;
    const [x0, y0, x1, y1] = d.bbox;
    const before = new Uint8ClampedArray((x1 - x0) * (y1 - y0));
    for (let y = y0; y < y1; y++) before.set(d.before.subarray(y * state.width + x0, y * state.width + x1), (y - y0) * (x1 - x0));
    pushUndo({ x0, y0, x1, y1, before, after: patchOf(x0, y0, x1, y1) });
    send();
  }
  function undo() {
    const entry = state.undo.pop();
    if (!entry) return;
    putPatch(entry, "before");
    state.redo.push(entry);
    send(); draw();
  }
  function redo() {
    const entry = state.redo.pop();
    if (!entry) return;
    putPatch(entry, "after");
    state.undo.push(entry);
    send(); draw();
  }

  // -- exemplar boxes --------------------------------------------------------------------------------
  function hitBox(sx, sy) {
    for (let k = state.boxes.length - 1; k >= 0; k--) {
      const [x, y, w, h] = state.boxes[k].box;
      const [bx, by] = screenOf(x, y), bw = w * state.scale, bh = h * state.scale;
      const corners = [[bx, by, "nw"], [bx + bw, by, "ne"], [bx, by + bh, "sw"], [bx + bw, by + bh, "se"]];
      for (const [cx, cy, corner] of corners) if (Math.abs(sx - cx) <= 8 && Math.abs(sy - cy) <= 8) return { k, corner };
      if (sx >= bx && sx <= bx + bw && sy >= by && sy <= by + bh) return { k, corner: null };
    }
    return null;
  }
  function movedBox(d, x, y) {
    const [bx, by, bw, bh] = d.start;
    const dx = x - d.x0, dy = y - d.y0;
    if (!d.corner) return [Math.round(bx + dx), Math.round(by + dy), bw, bh];
    let [left, top, right, bottom] = [bx, by, bx + bw, by + bh];
    if (d.corner.includes("w")) left += dx; else right += dx;
    if (d.corner.includes("n")) top += dy; else bottom += dy;
    const [l, r] = [Math.min(left, right), Math.max(left, right)], [t, b] = [Math.min(top, bottom), Math.max(top, bottom)];
    return [Math.round(l), Math.round(t), Math.max(1, Math.round(r - l)), Math.max(1, Math.round(b - t))];
  }

  // -- pointer ----------------------------------------------------------------------------------------
  // two fingers on a touch screen pinch to zoom and pan (a stroke the first finger began is taken back)
  const touches = new Map();
  function cancelStroke() {
    const d = state.drag;
    if (!d || d.kind !== "stroke" || !d.bbox) return;
    const [x0, y0, x1, y1] = d.bbox;
    for (let y = y0; y < y1; y++) state.map.set(d.before.subarray(y * state.width + x0, y * state.width + x1), y * state.width + x0);
    paintOverlay(x0, y0, x1, y1);
  }
  function pinchState() {
    const [a, b] = [...touches.values()];
    return { dist: Math.max(1, Math.hypot(a[0] - b[0], a[1] - b[1])), mid: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2] };
  }
  view.addEventListener("pointerdown", (event) => {
    if (!state.map || state.loading) return;
    view.focus();
    const [sx, sy, x, y] = photoPoint(event);
    view.setPointerCapture(event.pointerId);
    if (event.pointerType === "touch") {
      touches.set(event.pointerId, [sx, sy]);
      if (touches.size === 2) {
        cancelStroke();
        const { dist, mid } = pinchState();
        state.drag = { kind: "pinch", dist, mid, scale: state.scale, ox: state.ox, oy: state.oy };
        event.preventDefault();
        draw();
        return;
      }
      if (touches.size > 2) return;
    }
    if (event.button === 1 || state.tool === "pan" || state.spaceDown) {
      state.drag = { kind: "pan", sx, sy, ox: state.ox, oy: state.oy };
    } else if (event.button !== 0) {
      return;
    } else if (state.tool === "brush" || state.tool === "eraser") {
      beginStroke(x, y);
    } else if (state.tool === "rect") {
      state.drag = { kind: "rect", x0: x, y0: y, x, y };
    } else if (state.tool === "select") {  // a click (Alt or Shift: what to leave out), or a box dragged
      state.drag = { kind: "pick", x0: x, y0: y, x, y, sx, sy, negative: event.altKey || event.shiftKey };
    } else if (state.tool === "move") {
      const hit = hitBox(sx, sy);
      if (!hit) return;
      state.drag = { kind: "box", k: hit.k, corner: hit.corner, start: state.boxes[hit.k].box, x0: x, y0: y,
                     boxes: state.boxes.map((b) => ({ ...b })) };
    }
    event.preventDefault();
    draw();
  });
  view.addEventListener("pointermove", (event) => {
    const [sx, sy, x, y] = photoPoint(event);
    state.pointer = [sx, sy];
    const d = state.drag;
    if (touches.has(event.pointerId)) touches.set(event.pointerId, [sx, sy]);
    if (d && d.kind === "pinch") {
      if (touches.size < 2) return;
      const { dist, mid } = pinchState();
      const scale = Math.min(32, Math.max(0.02, (d.scale * dist) / d.dist));
      const px = (d.mid[0] - d.ox) / d.scale, py = (d.mid[1] - d.oy) / d.scale;  // the photo point under the fingers
      state.scale = scale; state.ox = mid[0] - px * scale; state.oy = mid[1] - py * scale; state.fitted = false;
      readouts();
    } else if (d && d.kind === "stroke") strokeTo(x, y);
    else if (d && d.kind === "pan") { state.ox = d.ox + sx - d.sx; state.oy = d.oy + sy - d.sy; state.fitted = false; }
    else if (d && (d.kind === "rect" || d.kind === "pick")) { d.x = x; d.y = y; }
    else if (d && d.kind === "box") d.boxes[d.k] = { ...d.boxes[d.k], box: movedBox(d, x, y), placed: true };
    draw();
  });
  const release = (event) => {
    touches.delete(event.pointerId);
    const d = state.drag;
    if (!d) return;
    if (d.kind === "pinch") { if (touches.size === 0) state.drag = null; return; }
    if (d.kind === "stroke") { const [, , x, y] = photoPoint(event); strokeTo(x, y); endStroke(); }
    else if (d.kind === "rect") {
      state.drag = null;
      const entry = fillRect(d);
      if (entry) { pushUndo(entry); send(); }
    } else if (d.kind === "pick") {
      state.drag = null;
      const [sx, sy] = photoPoint(event);
      const [x0, y0, x1, y1] = rectOf(d);
      if (Math.hypot(sx - d.sx, sy - d.sy) < 5) {
        state.picks.clicks.push([Math.floor(d.x0), Math.floor(d.y0), d.negative]);
      } else if (x1 > x0 && y1 > y0) {
        state.picks.boxes.push([x0, y0, x1 - x0, y1 - y0]);
      } else return;
      trigger("point", { clicks: state.picks.clicks, boxes: state.picks.boxes });
    } else if (d.kind === "box") {
      state.drag = null;
      const moved = d.boxes[d.k];
      if (moved.box.join() !== d.start.join()) {
        state.boxes = d.boxes;
        trigger("box", { slot: moved.slot, box: moved.box });
      }
    } else state.drag = null;
    readouts(); draw();
  };
  view.addEventListener("pointerup", release);
  view.addEventListener("pointercancel", release);
  view.addEventListener("pointerleave", () => { state.pointer = null; draw(); });
  view.addEventListener("wheel", (event) => {
    if (!state.map) return;
    event.preventDefault();
    const [sx, sy] = photoPoint(event);
    zoomTo(state.scale * Math.exp(-event.deltaY * 0.0015), sx, sy);
  }, { passive: false });

  // -- keys ----------------------------------------------------------------------------------------------
  const TOOLS = { b: "brush", e: "eraser", r: "rect", v: "move", h: "pan", s: "select" };
  const TEXT_INPUTS = ["text", "number", "search", "email", "password", "url", "tel"];
  function typing(target) {  // keys typed into a field are the field's, not the canvas's
    const tag = (target && target.tagName) || "";
    return (tag === "INPUT" && TEXT_INPUTS.includes(target.type)) || tag === "TEXTAREA" || tag === "SELECT"
      || Boolean(target && target.isContentEditable);
  }
  function nudge(input, factor, delta) {
    const v = Number(input.value);
    input.value = String(Math.round(factor ? v * factor : v + delta));
    if (factor && Number(input.value) === v) input.value = String(v + (factor > 1 ? 1 : -1));
    readouts(); draw();
  }
  function onKey(event) {
    if (!element.isConnected || typing(event.target) || !state.map) return;
    const key = event.key.toLowerCase(), mod = event.ctrlKey || event.metaKey;
    if (mod && key === "enter") { const run = document.querySelector("#pixels-run"); if (run && !run.disabled) run.click(); }
    else if (mod && key === "z") { event.shiftKey ? redo() : undo(); }
    else if (mod && key === "y") redo();
    else if (mod || event.altKey) return;
    else if (TOOLS[key]) state.tool = TOOLS[key];
    else if (event.key === "[") event.shiftKey ? nudge(inputs.hardness, 0, -10) : nudge(inputs.size, 1 / 1.25);
    else if (event.key === "]") event.shiftKey ? nudge(inputs.hardness, 0, 10) : nudge(inputs.size, 1.25);
    else if (event.key === "{") nudge(inputs.hardness, 0, -10);
    else if (event.key === "}") nudge(inputs.hardness, 0, 10);
    else if (key === "0") fit();
    else if (key === "1") actual(1);
    else if (key === "2") actual(2);
    else if (key === "+" || key === "=") zoomTo(state.scale * 1.25);
    else if (key === "-") zoomTo(state.scale / 1.25);
    else if (key === "m") { state.showMap = !state.showMap; paintOverlay(0, 0, state.width, state.height); }
    else if (key === " ") { state.spaceDown = true; }
    else return;
    event.preventDefault();
    readouts(); draw();
  }
  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", (event) => { if (event.key === " ") state.spaceDown = false; });

  // -- toolbar ----------------------------------------------------------------------------------------
  element.querySelectorAll("[data-tool]").forEach((button) => button.addEventListener("click", () => {
    state.tool = button.dataset.tool; readouts(); draw();
  }));
  document.addEventListener("click", (event) => {  // the page's "Clear clicks" starts the Select tool's list afresh
    if (event.target.closest && event.target.closest("#pixels-select-clear")) {
      state.picks = { clicks: [], boxes: [] }; draw();
    }
  });
  $(".pxb-undo").addEventListener("click", undo);
  $(".pxb-redo").addEventListener("click", redo);
  $(".pxb-fit").addEventListener("click", fit);
  $(".pxb-actual").addEventListener("click", () => actual(1));
  $(".pxb-zoom-in").addEventListener("click", () => zoomTo(state.scale * 1.25));
  $(".pxb-zoom-out-button").addEventListener("click", () => zoomTo(state.scale / 1.25));
  $(".pxb-showmap").addEventListener("click", () => {
    state.showMap = !state.showMap;
    if (state.map) paintOverlay(0, 0, state.width, state.height);
    readouts(); draw();
  });

  // -- the value --------------------------------------------------------------------------------------
  function mapURL() {
    const canvas = document.createElement("canvas");
    canvas.width = state.width; canvas.height = state.height;
    const c = canvas.getContext("2d");
    const image = c.createImageData(state.width, state.height), data = image.data;
    for (let p = 0; p < state.map.length; p++) { const q = p * 4; data[q] = data[q + 1] = data[q + 2] = state.map[p]; data[q + 3] = 255; }
    c.putImageData(image, 0, 0);
    return canvas.toDataURL("image/png");
  }
  function mine() {
    return { origin: "canvas", map: mapURL(), width: state.width, height: state.height, serial: state.serial,
             target: state.target, strokes: state.strokes };
  }
  function send() {
    state.strokes += 1;
    state.written = mine();
    props.value = state.written;
    readouts();
    trigger("input");
  }
  function loaded(url) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("the canvas could not read an image the server sent"));
      image.src = url;
    });
  }
  async function receive(value) {
    if (!value || value.origin === "canvas") return;  // what this script wrote itself
    if (value.boxes) state.boxes = value.boxes.map((b) => ({ ...b, sent: b.box }));
    if (!value.map) {  // only the boxes changed: keep the map painted here, and say so in the value
      if (state.map) { state.written = mine(); props.value = state.written; }
      draw();
      return;
    }
    state.loading += 1;
    readouts();
    try {
      const [photo, gray] = await Promise.all([value.photo ? loaded(value.photo) : Promise.resolve(state.photo),
                                               loaded(value.map)]);
      const newPhoto = value.photo_key !== state.photoKey;
      const canvas = document.createElement("canvas");
      canvas.width = value.width; canvas.height = value.height;
      const c = canvas.getContext("2d");
      c.drawImage(gray, 0, 0);
      const pixels = c.getImageData(0, 0, value.width, value.height).data;
      const map = new Uint8ClampedArray(value.width * value.height);
      for (let p = 0; p < map.length; p++) map[p] = pixels[p * 4];
      // undo stacks are kept per map painted, and start afresh with another photo
      if (value.photo_key !== state.photoKey) { state.stacks = {}; state.picks = { clicks: [], boxes: [] }; }
      else state.stacks[state.target] = { undo: state.undo, redo: state.redo, bytes: state.undoBytes };
      const same = value.photo_key === state.photoKey && value.target === state.target;
      if (same) {  // a tool changed the map: that change can be undone here like a stroke
        pushUndo({ x0: 0, y0: 0, x1: state.width, y1: state.height, before: state.map.slice(), after: map.slice() });
      } else {
        const kept = state.stacks[value.target] || { undo: [], redo: [], bytes: 0 };
        state.undo = kept.undo; state.redo = kept.redo; state.undoBytes = kept.bytes;
      }
      state.photoKey = value.photo_key;
      state.photo = photo;
      state.width = value.width; state.height = value.height;
      state.map = map; state.serial = value.serial; state.target = value.target;
      state.overlay = document.createElement("canvas");
      state.overlay.width = state.width; state.overlay.height = state.height;
      state.overlayCtx = state.overlay.getContext("2d");
      state.overlayData = state.overlayCtx.createImageData(state.width, state.height);
      paintOverlay(0, 0, state.width, state.height);
      $(".pxb-empty").style.display = "none";
      if (newPhoto || state.fitted) fit();
      state.written = mine();
      props.value = state.written;
    } catch (error) {
      console.error(error);
    } finally {
      state.loading -= 1;
      readouts(); draw();
    }
  }
  watch("value", () => receive(props.value));
  new ResizeObserver(resize).observe(stage);
  readouts();
  resize();
  if (props.value && props.value.map) receive(props.value);
})();
