// Shared by the agent console and the CX dashboard: the bearer token gate, authorised fetch, SSE reading
// (fetch + ReadableStream: EventSource cannot send an Authorization header) and small DOM helpers.
// Untrusted text only ever goes through textContent (el(..., {text})), never innerHTML.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Create an element: attributes (class, text, on<event>, data-*, aria-*) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/** An http(s) URL, or null for anything else (javascript:, data:, junk). */
export function safeUrl(u) {
  try {
    const url = new URL(u);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export const fmt = {
  pct: (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`),
  num: (v, d = 2) => (v === null || v === undefined ? "—" : Number(v).toFixed(d)),
  when: (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "—"),
  ago: (iso) => {
    if (!iso) return "—";
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  },
};

/** A bearer-token client for one role; the token lives in sessionStorage (gone when the tab closes). */
export class Client {
  constructor(role) {
    this.role = role;
    this.storageKey = `cxa:${role}-token`;
  }
  get token() {
    return sessionStorage.getItem(this.storageKey);
  }
  set token(v) {
    if (v) sessionStorage.setItem(this.storageKey, v);
    else sessionStorage.removeItem(this.storageKey);
  }

  async request(path, { method = "GET", body, accept = "application/json", signal } = {}) {
    const headers = { Authorization: `Bearer ${this.token || ""}`, Accept: accept };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!r.ok) {
      let code = "http_error",
        message = `HTTP ${r.status}`;
      try {
        const e = (await r.json()).error;
        code = e.code;
        message = e.message;
      } catch {
        /* not our error shape */
      }
      if (r.status === 401) this.onUnauthorized?.();
      throw new ApiError(r.status, code, message);
    }
    return accept === "text/event-stream" ? r : r.json();
  }
  get(path, opts) {
    return this.request(path, opts);
  }
  post(path, body) {
    return this.request(path, { method: "POST", body });
  }
  put(path, body) {
    return this.request(path, { method: "PUT", body });
  }
  /** DELETE; a 204 has no body. */
  async del(path) {
    const r = await fetch(path, { method: "DELETE", headers: { Authorization: `Bearer ${this.token || ""}` } });
    if (!r.ok && r.status !== 204) {
      let code = "http_error",
        message = `HTTP ${r.status}`;
      try {
        ({ code, message } = (await r.json()).error);
      } catch {
        /* not our error shape */
      }
      throw new ApiError(r.status, code, message);
    }
  }
  /** GET that resolves to null on 404 (a route or a record that does not exist yet). */
  async maybe(path) {
    try {
      return await this.get(path);
    } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
  }

  /**
   * Follow an SSE route, reconnecting after it closes or drops, resuming after the last `id:` seen.
   * `onEvent({event, data, id})`; returns an AbortController (abort() stops following).
   */
  follow(path, onEvent, { after = 0 } = {}) {
    const ctrl = new AbortController();
    let last = after;
    (async () => {
      while (!ctrl.signal.aborted) {
        try {
          const sep = path.includes("?") ? "&" : "?";
          const r = await this.request(`${path}${sep}after=${last}`, { accept: "text/event-stream", signal: ctrl.signal });
          for await (const ev of readSSE(r)) {
            if (ev.id !== null && !Number.isNaN(Number(ev.id))) last = Math.max(last, Number(ev.id));
            onEvent(ev);
            if (ctrl.signal.aborted) return;
          }
        } catch (e) {
          if (ctrl.signal.aborted || e.status === 401 || e.status === 404) return;
        }
        await new Promise((res) => setTimeout(res, 2000));
      }
    })();
    return ctrl;
  }
}

/** Yield {event, data, id} from a text/event-stream Response (data parsed as JSON when it is JSON). */
export async function* readSSE(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = "message",
          id = null;
        const lines = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          if (field === "event") event = val;
          else if (field === "data") lines.push(val);
          else if (field === "id") id = val;
        }
        if (!lines.length) continue;
        let data = lines.join("\n");
        try {
          data = JSON.parse(data);
        } catch {
          /* plain text */
        }
        yield { event, data, id };
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * The sign-in gate: shows #login until a token that `check(client)` accepts is given; then calls start().
 * A 401 later (token rotated) brings the gate back.
 */
export function gate(client, check, start) {
  const login = document.getElementById("login");
  const app = document.getElementById("app");
  const form = login.querySelector("form");
  const input = login.querySelector("input[type=password]");
  const msg = login.querySelector(".msg");
  let started = false;
  const show = (text) => {
    login.hidden = false;
    app.hidden = true;
    msg.textContent = text || "";
    input.focus();
  };
  const enter = async () => {
    try {
      await check(client);
    } catch (e) {
      client.token = null;
      show(e.status === 401 || e.status === 403 ? "That token was not accepted." : `Could not reach the server: ${e.message}`);
      return;
    }
    login.hidden = true;
    app.hidden = false;
    if (!started) {
      started = true;
      start();
    }
  };
  client.onUnauthorized = () => {
    client.token = null;
    show("Your token is no longer accepted; sign in again.");
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    client.token = input.value.trim();
    input.value = "";
    enter();
  });
  document.querySelector("[data-signout]")?.addEventListener("click", () => {
    client.token = null;
    location.reload();
  });
  if (client.token) enter();
  else show();
}

/** A paragraph with the help center's **bold** spans, built as DOM nodes (never parsed as HTML). */
export function richText(text, cls = "text") {
  return el("p", { class: cls }, (text || "").split("**").map((part, i) => (i % 2 ? el("strong", { text: part }) : part)));
}

/** Citations grouped by article: the first passage, how many were cited, the best score. */
function bySource(citations) {
  const groups = new Map();
  for (const c of citations) {
    const key = c.source_id || c.url || c.title;
    const g = groups.get(key);
    if (g) {
      g.passages += 1;
      g.best = Math.max(g.best, Number(c.score) || 0);
    } else groups.set(key, { c, passages: 1, best: Number(c.score) || 0 });
  }
  return [...groups.values()];
}

/** A transcript message as a list item, with citations as links (one per article). */
export function messageNode(m) {
  const who = { customer: "Customer", assistant: "Assistant", agent: m.author_id ? `Agent ${m.author_id}` : "Agent", system: "System" }[m.role] || m.role;
  const node = el(
    "li",
    { class: `msg ${m.role}`, "data-seq": m.seq, "data-role": m.role },
    el("div", { class: "meta" }, el("span", { class: "who", text: who }), el("time", { datetime: m.created_at, text: fmt.when(m.created_at) })),
    richText(m.text),
  );
  if (m.citations && m.citations.length) {
    node.append(
      el(
        "ol",
        { class: "cites", "aria-label": "Sources" },
        bySource(m.citations).map(({ c, passages, best }) => {
          const href = c.url && safeUrl(c.url);
          const label = `${c.title || c.source_id} (${best.toFixed(2)}${passages > 1 ? `, ${passages} passages` : ""})`;
          return el("li", {}, href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", title: c.snippet, text: label }) : el("span", { title: c.snippet, text: label }));
        }),
      ),
    );
  }
  return node;
}
