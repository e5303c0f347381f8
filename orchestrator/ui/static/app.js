// weir UI: pan and zoom of the graph, the node panel, live updates from Server-Sent Events.
// No framework and no build step. Everything the server sends as text is inserted with
// textContent, never as HTML.
"use strict";

(function () {
  const GLYPHS = {
    pending: "○", queued: "○", running: "⟳", waiting: "◷", completed: "✓",
    failed: "✗", skipped: "–", cancelled: "⊘",
  };
  const TERMINAL = new Set(["execution.completed", "execution.failed", "execution.cancelled"]);
  const MAX_ROWS = 500;

  // --- graph: pan, zoom, keyboard, node panel --------------------------------------------

  function initGraph(view) {
    if (!view || view.dataset.ready) return;
    const svg = view.querySelector("svg");
    if (!svg) return;
    const box = svg.viewBox.baseVal;
    const full = { x: box.x, y: box.y, w: box.width || 1, h: box.height || 1 };
    const state = { x: full.x, y: full.y, scale: 1 };

    function size() {
      const r = view.getBoundingClientRect();
      return { w: Math.max(r.width, 1), h: Math.max(r.height, 1) };
    }
    function apply() {
      const s = size();
      svg.setAttribute("viewBox", `${state.x} ${state.y} ${s.w / state.scale} ${s.h / state.scale}`);
    }
    function fit(minScale) {
      const s = size();
      const scale = Math.min(s.w / full.w, s.h / full.h) * 0.96;
      state.scale = Math.min(Math.max(scale, minScale || 0), 2);
      const shownW = s.w / state.scale, shownH = s.h / state.scale;
      state.x = full.x - Math.max((shownW - full.w) / 2, 0);
      state.y = full.y - Math.max((shownH - full.h) / 2, 0);
      apply();
    }
    function zoom(factor, cx, cy) {
      const s = size();
      const px = cx === undefined ? s.w / 2 : cx, py = cy === undefined ? s.h / 2 : cy;
      const wx = state.x + px / state.scale, wy = state.y + py / state.scale;
      state.scale = Math.min(Math.max(state.scale * factor, 0.02), 4);
      state.x = wx - px / state.scale;
      state.y = wy - py / state.scale;
      apply();
    }
    function pan(dx, dy) {
      state.x -= dx / state.scale;
      state.y -= dy / state.scale;
      apply();
    }

    view.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = view.getBoundingClientRect();
      zoom(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });

    let drag = null;
    view.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, moved: false, id: e.pointerId };
    });
    view.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      if (!drag.moved) { drag.moved = true; view.setPointerCapture(drag.id); view.classList.add("dragging"); }
      drag.x = e.clientX; drag.y = e.clientY;
      pan(dx, dy);
    });
    function endDrag(e) {
      if (!drag) return;
      const moved = drag.moved;
      drag = null;
      view.classList.remove("dragging");
      if (!moved && e.type === "pointerup") activate(e.target);
    }
    view.addEventListener("pointerup", endDrag);
    view.addEventListener("pointercancel", endDrag);

    view.addEventListener("keydown", (e) => {
      const step = 60;
      const keys = {
        ArrowLeft: () => pan(step, 0), ArrowRight: () => pan(-step, 0),
        ArrowUp: () => pan(0, step), ArrowDown: () => pan(0, -step),
        "+": () => zoom(1.25), "=": () => zoom(1.25), "-": () => zoom(0.8), "0": () => fit(),
      };
      if ((e.key === "Enter" || e.key === " ") && e.target !== view) {
        e.preventDefault();
        activate(e.target);
        return;
      }
      if (keys[e.key] && (e.target === view || !e.key.startsWith("Arrow"))) {
        e.preventDefault();
        keys[e.key]();
      }
    });
    const tools = view.parentElement.querySelector(".graph-tools");
    if (tools) {
      tools.addEventListener("click", (e) => {
        const which = e.target.closest("[data-zoom]");
        if (!which) return;
        ({ in: () => zoom(1.25), out: () => zoom(0.8), fit: () => fit() })[which.dataset.zoom]();
      });
    }
    new ResizeObserver(() => apply()).observe(view);
    fit(0.35);
    view.weirGraph = { fit, zoom, pan };
    view.dataset.ready = "true";
  }

  function expandList(view) {
    return (view.dataset.expand || "").split(",").filter(Boolean);
  }

  function graphQuery(view, expand) {
    const q = new URLSearchParams();
    for (const g of expand) q.append("expand", g);
    if (view.dataset.expandAll) q.set("expand_all", "true");
    return q.toString();
  }

  function activate(target) {
    const view = document.getElementById("graph");
    if (!view || !target.closest) return;
    const node = target.closest("[data-node]");
    if (node && node.dataset.href) {
      view.querySelectorAll(".node.selected").forEach((n) => n.classList.remove("selected"));
      node.classList.add("selected");
      htmx.ajax("GET", node.dataset.href, { target: "#node-panel" });
      return;
    }
    const collapse = target.closest("[data-collapse]");
    const group = target.closest(".group.collapsed[data-group]");
    let expand = expandList(view);
    if (group) expand = expand.concat([group.dataset.group]);
    else if (collapse) expand = expand.filter((g) => g !== collapse.dataset.collapse);
    else return;
    const query = new URLSearchParams();
    for (const g of expand) query.append("expand", g);
    htmx.ajax("GET", `${view.dataset.graphUrl}?${query}`, { target: "#graph-area" });
  }

  // --- live execution ----------------------------------------------------------------------

  function statusText(el, status) {
    const label = el.querySelector(".node-status");
    if (label) label.textContent = `${GLYPHS[status] || "•"} ${status}`;
  }

  function applyStatus(body) {
    const view = document.getElementById("graph");
    const statuses = {};
    if (view) {
      for (const el of view.querySelectorAll("[data-node]")) {
        const info = body.nodes[el.dataset.node];
        if (!info) continue;
        const [status, attempts, visits] = info;
        statuses[el.dataset.node] = status;
        if (el.dataset.status !== status) {
          el.dataset.status = status;
          statusText(el, status);
        }
        const label = `${el.dataset.node}: ${status}` +
          (attempts > 1 ? `, ${attempts} attempts` : "") + (visits > 1 ? `, ${visits} visits` : "");
        el.setAttribute("aria-label", label);
        const words = [visits > 1 ? `×${visits}` : "", attempts > 1 ? `attempt ${attempts}` : ""]
          .filter(Boolean).join(" ");
        let badge = el.querySelector(".badges");
        if (!badge && words) {
          const box = el.querySelector("rect.node-box");
          badge = document.createElementNS("http://www.w3.org/2000/svg", "text");
          badge.setAttribute("class", "badges");
          badge.setAttribute("x", String(Number(box ? box.getAttribute("width") : 180) - 10));
          badge.setAttribute("y", "34");
          badge.setAttribute("text-anchor", "end");
          el.appendChild(badge);
        }
        if (badge) badge.textContent = words;
      }
      for (const el of view.querySelectorAll(".group.collapsed[data-group]")) {
        const info = body.groups[el.dataset.group];
        if (!info) continue;
        el.dataset.status = info[0];
        statuses[el.dataset.group] = info[0];
        const counts = el.querySelector(".group-counts");
        if (counts) counts.textContent = info[1];
      }
      for (const edge of view.querySelectorAll(".edge[data-from]")) {
        const from = statuses[edge.dataset.from], to = statuses[edge.dataset.to];
        const ran = from === "completed" || from === "failed";  // both route (svg.py)
        edge.classList.toggle("taken", ran && !!to && to !== "pending" && to !== "skipped");
        edge.classList.toggle("failed-path", to === "failed");
      }
    }
    for (const cell of document.querySelectorAll("#node-table tbody tr")) {
      const name = cell.querySelector("code");
      const status = cell.querySelector(".status");
      const info = name && body.nodes[name.textContent];
      if (info && status && status.dataset.status !== info[0]) {
        status.dataset.status = info[0];
        status.textContent = `${GLYPHS[info[0]] || "•"} ${info[0]}`;
      }
    }
  }

  function liveExecution(root) {
    const id = root.dataset.execution;
    const base = `/ui/executions/${encodeURIComponent(id)}`;
    let pending = null, running = false, again = false, ended = false, lateChecks = 0;

    async function refresh() {
      pending = null;
      if (running) { again = true; return; }
      running = true;
      try {
        const view = document.getElementById("graph");
        const query = view ? graphQuery(view, expandList(view)) : "";
        const answer = await fetch(`${base}/status?${query}`, { headers: { Accept: "application/json" } });
        if (answer.ok) {
          const body = await answer.json();
          applyStatus(body);
          // An execution can be marked ended a moment before its engine's final result (with
          // every node's last status) is in: look again for a few seconds then.
          const settled = !Object.values(body.nodes).some((n) => n[0] === "running");
          if (body.finished && !settled && lateChecks < 20) { lateChecks += 1; setTimeout(schedule, 500); }
          else if (body.finished && !ended) finish(body.status);
        }
      } finally {
        running = false;
        if (again) { again = false; schedule(); }
      }
    }
    function schedule() {
      if (!pending) pending = setTimeout(refresh, 150);
    }
    function finish(status) {
      ended = true;
      root.dataset.status = status;
      delete root.dataset.live;
      htmx.ajax("GET", `${base}/header`, { target: "#execution-header" });
      const timeline = document.getElementById("timeline");
      if (timeline) htmx.trigger(timeline, "refresh");
      source.close();
      setState("ended");
    }
    const rows = document.querySelector("#execution-events tbody");
    const source = follow(`/ui/stream?execution=${encodeURIComponent(id)}`, root.dataset.since, (events) => {
      for (const e of events) {
        if (rows) addRow(rows, e, false);
        if (TERMINAL.has(e.type)) schedule();
      }
      schedule();
      const timeline = document.getElementById("timeline");
      if (timeline && !timeline.dataset.queued) {
        timeline.dataset.queued = "1";
        setTimeout(() => { delete timeline.dataset.queued; htmx.trigger(timeline, "refresh"); }, 2000);
      }
    });
    schedule();  // what happened between the page's render and the stream's start
  }

  // --- event streams -------------------------------------------------------------------------

  function setState(state) {
    const el = document.getElementById("live-state");
    if (!el) return;
    el.dataset.state = state;
    el.textContent = { live: "live", reconnecting: "reconnecting…", ended: "ended" }[state] || "";
  }

  // follow(url, since, onEvents): an EventSource from `since`, resuming after a reconnect
  // (the browser sends Last-Event-ID) and after `lagged` (a fresh stream from its id).
  function follow(url, since, onEvents) {
    const handle = { source: null, closed: false, close() { this.closed = true; if (this.source) this.source.close(); } };
    function open(after) {
      const sep = url.includes("?") ? "&" : "?";
      const source = new EventSource(after ? `${url}${sep}since=${after}` : url);
      handle.source = source;
      source.onopen = () => setState("live");
      source.onerror = () => { if (!handle.closed) setState("reconnecting"); };
      source.onmessage = (m) => {
        try { onEvents([JSON.parse(m.data)]); } catch (err) { console.warn("weir: bad event", err); }
      };
      source.addEventListener("lagged", (m) => {
        source.close();
        if (!handle.closed) open(JSON.parse(m.data).resume_after);
      });
    }
    open(since);
    return handle;
  }

  function cell(text, tag) {
    const td = document.createElement("td");
    if (tag) { const inner = document.createElement(tag); inner.textContent = text; td.appendChild(inner); }
    else td.textContent = text;
    return td;
  }

  function addRow(tbody, e, showExecution) {
    if (tbody.querySelector(`tr[data-sequence="${e.sequence}"]`)) return;
    const tr = document.createElement("tr");
    tr.dataset.sequence = e.sequence;
    tr.dataset.severity = e.severity;
    tr.className = "fresh";
    tr.appendChild(cell(String(e.sequence)));
    tr.appendChild(cell((e.at || "").replace("T", " ").slice(0, 19) + "Z"));
    tr.appendChild(cell(e.type, "span"));
    if (showExecution) {
      const td = document.createElement("td");
      if (e.execution_id) {
        const a = document.createElement("a");
        a.href = `/ui/executions/${encodeURIComponent(e.execution_id)}`;
        const code = document.createElement("code");
        code.textContent = e.execution_id;
        a.appendChild(code);
        td.appendChild(a);
      }
      tr.appendChild(td);
    }
    let node = e.node || "";
    if (node && e.visit > 1) node += ` visit ${e.visit}`;
    if (node && e.attempt > 1) node += ` attempt ${e.attempt}`;
    tr.appendChild(cell(node, e.node ? "code" : null));
    tr.appendChild(cell(e.message || ""));
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
  }

  function liveEvents(root) {
    const tbody = root.querySelector("tbody");
    const pause = document.getElementById("pause-events");
    const held = [];
    follow(root.dataset.stream, root.dataset.since, (events) => {
      for (const e of events) {
        if (pause && pause.checked) held.push(e);
        else addRow(tbody, e, true);
      }
    });
    if (pause) pause.addEventListener("change", () => {
      if (!pause.checked) while (held.length) addRow(tbody, held.shift(), true);
    });
  }

  // The execution list never redraws itself under the reader (it would take their focus): it
  // says when an execution of the list, or a new one the filters may show, changed.
  function liveList(root) {
    const banner = document.getElementById("list-changed");
    if (!banner) return;
    follow(root.dataset.liveList, root.dataset.since, (events) => {
      const workflow = new URLSearchParams(location.search).get("workflow") || "";
      for (const e of events) {
        const shown = root.querySelector(`tr[data-execution="${CSS.escape(e.execution_id)}"]`);
        const fresh = e.type === "execution.queued" && (!workflow || workflow === e.workflow);
        if (shown || fresh) banner.hidden = false;
      }
    });
    document.body.addEventListener("htmx:afterSettle", (e) => {
      if (e.detail.target && e.detail.target.id === "executions") banner.hidden = true;
    });
  }

  // --- start ---------------------------------------------------------------------------------

  function start(scope) {
    const view = (scope.querySelector && scope.querySelector("#graph")) || (scope.id === "graph" ? scope : null);
    if (view) initGraph(view);
  }

  document.addEventListener("DOMContentLoaded", () => {
    start(document);
    const execution = document.querySelector("#execution[data-live]");
    if (execution) liveExecution(execution);
    const stream = document.getElementById("event-stream");
    if (stream) liveEvents(stream);
    const list = document.querySelector("#executions[data-live-list]");
    if (list) liveList(list);
    document.body.addEventListener("htmx:afterSettle", (e) => start(e.detail.elt || document));
  });
})();
