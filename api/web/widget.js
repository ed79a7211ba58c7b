/*
 * cx-assistant chat widget: one <script> tag puts a chat launcher on any page.
 *
 *   <script src="https://support.example.com/widget.js" data-widget-key="pk_..." defer
 *           data-customer-id="cus_1001" data-customer-hash="<hex HMAC from your backend>"></script>
 *
 * Attributes: data-widget-key (required), data-customer-id + data-customer-hash (a verified customer),
 * data-api (API base URL; default: this script's origin), data-title (panel title).
 *
 * Everything lives in a shadow root (the host page's CSS cannot reach it); all text from the model, the
 * agent or the customer is set with textContent, never parsed as HTML; citation links must be http(s).
 * SSE is read with fetch() + ReadableStream because EventSource cannot send the X-Widget-Key header.
 * The conversation's token (returned when it is created) is kept with its id and sent on every call as
 * X-Conversation-Token, the live stream included: a verified customer's conversation opens only with it. Each
 * POST carries an Idempotency-Key, kept until it is answered, so a retried send is stored once.
 */
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.__cxaWidget) return;
  const data = script.dataset;
  const KEY = data.widgetKey;
  if (!KEY) {
    console.error("cx-assistant widget: data-widget-key is missing");
    return;
  }
  const API = (data.api || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  const TITLE = data.title || "Support";
  const CUSTOMER = data.customerId || null;
  const HASH = data.customerHash || null;
  const STORE = `cxa:${KEY}:${CUSTOMER || "anonymous"}`;
  const ACTIVE = new Set(["waiting_for_agent", "with_agent"]);

  // -- small helpers -----------------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }
  const safeUrl = (u) => {
    try {
      const url = new URL(u);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  };
  const load = () => {
    try {
      return JSON.parse(localStorage.getItem(STORE) || "{}");
    } catch {
      return {};
    }
  };
  const save = (patch) => {
    try {
      localStorage.setItem(STORE, JSON.stringify({ ...load(), ...patch }));
    } catch {
      /* private mode: the conversation just does not survive a reload */
    }
  };
  const headers = (extra = {}) => ({
    "X-Widget-Key": KEY,
    "Content-Type": "application/json",
    ...(state.token ? { "X-Conversation-Token": state.token } : {}),
    ...extra,
  });
  const newKey = () =>
    crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

  async function api(path, { method = "GET", body, accept, key } = {}) {
    const extra = accept ? { Accept: accept } : {};
    if (method === "POST") extra["Idempotency-Key"] = key || newKey();
    const r = await fetch(API + path, {
      method,
      headers: headers(extra),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!r.ok) {
      let message = `HTTP ${r.status}`;
      try {
        message = (await r.json()).error.message || message;
      } catch {
        /* not our error shape */
      }
      const err = new Error(message);
      err.status = r.status;
      throw err;
    }
    return accept === "text/event-stream" ? r : r.json();
  }

  /** Yield {event, data, id} from a text/event-stream response body. The same parser as common.js's
   * readSSE: the widget is one classic script dropped into other sites' pages, so it imports nothing. */
  async function* sse(response, signal) {
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
          if (lines.length) {
            let parsed = lines.join("\n");
            try {
              parsed = JSON.parse(parsed);
            } catch {
              /* plain text data */
            }
            yield { event, data: parsed, id };
          }
          if (signal && signal.aborted) return;
        }
      }
    } finally {
      reader.releaseLock();
    }
  }

  // -- state -------------------------------------------------------------------------------------
  const state = {
    id: load().id || null,
    token: load().token || null, // the conversation's X-Conversation-Token
    status: "bot",
    lastSeq: 0,
    busy: false,
    follow: null, // AbortController of the live events stream
    rated: false,
    customerMessages: 0,
  };

  // -- DOM ---------------------------------------------------------------------------------------
  const host = document.createElement("cxa-widget");
  const root = host.attachShadow({ mode: "open" });
  const style = el("link", { rel: "stylesheet", href: `${API}/web/widget.css` });
  const launcher = el("button", {
    class: "launcher",
    type: "button",
    "aria-label": `Open chat with ${TITLE}`,
    "aria-expanded": "false",
    "aria-controls": "cxa-panel",
  });
  // No emoji icon: a machine without a colour-emoji font (many Linux desktops, headless browsers) shows a box.
  launcher.append(el("span", { text: "Chat with us" }));
  const closeBtn = el("button", { class: "icon close", type: "button", "aria-label": "Close chat", text: "×" });
  const statusLine = el("p", { class: "status-line", text: "Answers from our help center, or a person." });
  const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation", tabindex: "0" });
  const typing = el("div", { class: "typing", hidden: true, "aria-label": "Assistant is typing" });
  typing.append(el("span"), el("span"), el("span"));
  const banner = el("div", { class: "banner", role: "status", hidden: true });
  const humanBtn = el("button", { class: "human", type: "button", text: "Talk to a person" });
  const input = el("textarea", {
    rows: "1",
    maxlength: "4000",
    placeholder: "Type your question…",
    "aria-label": "Your message",
  });
  const sendBtn = el("button", { class: "send", type: "submit", "aria-label": "Send message", text: "Send" });
  const composer = el("form", { class: "composer" }, input, sendBtn);
  const actions = el("div", { class: "actions" }, humanBtn);
  const rating = el("div", { class: "rating", hidden: true });
  const panel = el(
    "section",
    { class: "panel", id: "cxa-panel", role: "dialog", "aria-label": `Chat with ${TITLE}`, hidden: true },
    el(
      "header",
      {},
      el("div", { class: "titles" }, el("h2", { text: TITLE }), statusLine),
      closeBtn,
    ),
    log,
    typing,
    banner,
    rating,
    actions,
    composer,
  );
  root.append(style, launcher, panel);
  host.hidden = true; // until the stylesheet is in: no flash of unstyled buttons
  style.addEventListener("load", () => (host.hidden = false));
  style.addEventListener("error", () => (host.hidden = false));

  // -- rendering ---------------------------------------------------------------------------------
  const WHO = { customer: "You", assistant: TITLE, agent: "Support agent", system: "" };

  function scroll() {
    log.scrollTop = log.scrollHeight;
  }

  /** Inline Markdown of a reply: **bold** and [label](http(s) link); everything else as text nodes. */
  function inline(text) {
    const out = [];
    const re = /\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text))) {
      if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
      if (m[1] !== undefined) out.push(el("strong", { text: m[1] }));
      else {
        const href = safeUrl(m[3]);
        out.push(href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: m[2] }) : document.createTextNode(m[2]));
      }
      last = re.lastIndex;
    }
    if (last < text.length) out.push(document.createTextNode(text.slice(last)));
    return out;
  }

  /** A reply's small Markdown subset as DOM nodes (never parsed as HTML): paragraphs, "- " and "1. " lists, bold,
   * links. A customer's own text is shown as written, a line a paragraph. */
  function blocks(text, markdown) {
    const nodes = [];
    let list = null;
    for (const line of text.split("\n")) {
      const m = markdown && line.match(/^\s*(?:([-*•])|(\d{1,2})[.)])\s+(.*)$/);
      if (m) {
        const tag = m[1] ? "ul" : "ol";
        if (!list || list.localName !== tag) {
          list = el(tag, tag === "ol" && m[2] !== "1" ? { start: m[2] } : {});
          nodes.push(list);
        }
        list.append(el("li", {}, ...inline(m[3])));
      } else if (line.trim()) {
        list = null;
        nodes.push(el("p", {}, ...(markdown ? inline(line) : [line])));
      } else list = null;
    }
    return nodes;
  }

  function setText(node, text) {
    node.dataset.raw = text;
    node.replaceChildren(...blocks(text, node.dataset.markdown === "true"));
  }

  function bubble(role, text, extra = {}) {
    const body = el("div", { class: "text", "data-markdown": role === "assistant" || role === "agent" ? "true" : "false" });
    setText(body, text || "");
    const node = el("div", { class: `msg ${role}`, "data-role": role }, role === "system" ? null : el("span", { class: "who", text: extra.who || WHO[role] }), body);
    log.append(node);
    scroll();
    return node;
  }

  function citations(node, cites) {
    node.querySelector(".cites")?.remove();
    node.querySelector(".cites-label")?.remove();
    if (!cites || !cites.length) return;
    const list = el("ol", { class: "cites", "aria-label": "Sources" });
    // several passages of one article are one source to the customer, and so are several records of one kind
    // ("Your account: payments" for each of three failed payments): keyed by link, else by what is shown
    const seen = new Set();
    for (const c of cites) {
      const key = c.url || c.title || c.source_id;
      if (seen.has(key)) continue;
      seen.add(key);
      const href = c.url && safeUrl(c.url);
      const label = c.title || c.source_id || "source";
      list.append(
        el(
          "li",
          {},
          href
            ? el("a", { href, target: "_blank", rel: "noopener noreferrer", title: c.snippet || "", text: label })
            : el("span", { title: c.snippet || "", text: label }),
        ),
      );
    }
    node.append(el("span", { class: "cites-label", text: list.children.length > 1 ? "Sources" : "Source" }), list);
    scroll();
  }

  function renderMessage(m) {
    const node = bubble(m.role, m.text);
    node.dataset.seq = m.seq;
    if (m.citations) citations(node, m.citations);
    return node;
  }

  function minutes(s) {
    if (s === null || s === undefined) return null;
    const m = Math.max(1, Math.round(s / 60));
    return m === 1 ? "about a minute" : `about ${m} minutes`;
  }

  function setStatus(status, queue = {}) {
    state.status = status;
    panel.dataset.status = status;
    humanBtn.hidden = status !== "bot";
    if (status === "waiting_for_agent") {
      const parts = ["A person will join this chat — you don't need to repeat anything."];
      if (queue.queue_position) parts.push(queue.queue_position === 1 ? "You're next in the queue." : `You're number ${queue.queue_position} in the queue.`);
      const wait = minutes(queue.expected_wait_s);
      if (wait) parts.push(`Usual wait: ${wait}.`);
      banner.textContent = parts.join(" ");
      banner.hidden = false;
      statusLine.textContent = "Waiting for a person";
    } else if (status === "with_agent") {
      banner.textContent = "A person has joined the chat.";
      banner.hidden = false;
      statusLine.textContent = "Chatting with a person";
    } else if (status === "resolved" || status === "abandoned") {
      banner.textContent = "This conversation has ended. Write again any time.";
      banner.hidden = false;
      statusLine.textContent = "Conversation ended";
    } else {
      banner.hidden = true;
      statusLine.textContent = "Answers from our help center, or a person.";
    }
    if (ACTIVE.has(status)) follow();
    else unfollow();
    if ((status === "resolved") && !state.rated && state.customerMessages > 0) askRating();
  }

  // -- conversation ------------------------------------------------------------------------------
  async function ensureConversation() {
    if (state.id) return state.id;
    const body = { channel: "web", metadata: { page: location.pathname } };
    if (CUSTOMER) Object.assign(body, { customer_id: CUSTOMER, customer_hash: HASH });
    state.token = null; // a new conversation: the old one's token is of no use
    const conv = await api("/v1/conversations", { method: "POST", body });
    state.id = conv.id;
    state.token = conv.token;
    state.lastSeq = 0;
    state.rated = false;
    save({ id: conv.id, token: conv.token, rated: false });
    return conv.id;
  }

  async function restore() {
    if (!state.id) return;
    try {
      const t = await api(`/v1/conversations/${encodeURIComponent(state.id)}`);
      log.textContent = "";
      for (const m of t.messages) {
        if (m.role === "system" && !m.text) continue;
        renderMessage(m);
        state.lastSeq = Math.max(state.lastSeq, m.seq);
        if (m.role === "customer") state.customerMessages += 1;
      }
      state.rated = Boolean(load().rated);
      setStatus(t.status, t);
    } catch (e) {
      if (e.status === 404 || e.status === 401 || e.status === 403) {
        state.id = null;
        state.token = null;
        save({ id: null, token: null });
      }
    }
  }

  async function send(text) {
    text = text.trim();
    if (!text || state.busy) return;
    state.busy = true;
    sendBtn.disabled = true;
    hideRating();
    if (state.status === "abandoned" || !state.id) state.customerMessages = 0; // a new conversation starts
    bubble("customer", text);
    state.customerMessages += 1;
    input.value = "";
    autosize();
    let reply = null;
    let tokens = 0;
    try {
      if (state.status === "abandoned") {
        state.id = null; // an abandoned conversation is over: start afresh
      }
      const id = await ensureConversation();
      if (!ACTIVE.has(state.status)) typing.hidden = false;
      const r = await api(`/v1/conversations/${encodeURIComponent(id)}/messages`, {
        method: "POST",
        body: { text },
        accept: "text/event-stream",
      });
      for await (const ev of sse(r)) {
        if (ev.event === "token") {
          typing.hidden = true;
          if (!reply) reply = bubble("assistant", "");
          tokens += 1;
          reply.dataset.tokens = String(tokens);
          const p = reply.querySelector(".text");
          setText(p, p.dataset.raw + ev.data.text);
          scroll();
        } else if (ev.event === "citations") {
          if (reply) citations(reply, ev.data.citations);
        } else if (ev.event === "handoff") {
          typing.hidden = true;
        } else if (ev.event === "error") {
          throw new Error(ev.data.error ? ev.data.error.message : "the assistant failed");
        } else if (ev.event === "done") {
          const turn = ev.data;
          if (reply) reply.dataset.done = "true";
          if (turn.action === "answer_and_offer") humanBtn.classList.add("offer");
          if (turn.handoff && turn.status === "waiting_for_agent") await refreshQueue();
          else setStatus(turn.status);
        }
      }
    } catch (e) {
      bubble("system", `Sorry, something went wrong (${e.message}). Try again, or talk to a person.`);
    } finally {
      typing.hidden = true;
      state.busy = false;
      sendBtn.disabled = false;
    }
  }

  async function refreshQueue() {
    try {
      const t = await api(`/v1/conversations/${encodeURIComponent(state.id)}`);
      state.lastSeq = Math.max(state.lastSeq, ...t.messages.map((m) => m.seq));
      setStatus(t.status, t);
    } catch {
      setStatus("waiting_for_agent");
    }
  }

  async function talkToPerson() {
    humanBtn.disabled = true;
    try {
      const id = await ensureConversation();
      const r = await api(`/v1/conversations/${encodeURIComponent(id)}/handoff`, {
        method: "POST",
        body: { reason: "customer_request" },
      });
      state.customerMessages = Math.max(state.customerMessages, 1);
      setStatus(r.status, r);
      bubble("system", "We're bringing in a person. They'll see everything you've written so far.");
    } catch (e) {
      bubble("system", `Sorry, we couldn't reach a person (${e.message}).`);
    } finally {
      humanBtn.disabled = false;
    }
  }

  // -- live messages from the agent ---------------------------------------------------------------
  function unfollow() {
    if (state.follow) state.follow.abort();
    state.follow = null;
  }

  async function follow() {
    if (state.follow || !state.id) return;
    const ctrl = new AbortController();
    state.follow = ctrl;
    while (!ctrl.signal.aborted) {
      try {
        const r = await fetch(`${API}/v1/conversations/${encodeURIComponent(state.id)}/events?after=${state.lastSeq}`, {
          headers: headers({ Accept: "text/event-stream", "Last-Event-ID": String(state.lastSeq) }),
          signal: ctrl.signal,
        });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        for await (const ev of sse(r, ctrl.signal)) {
          if (ev.event === "message") {
            const m = ev.data;
            if (m.seq <= state.lastSeq) continue;
            state.lastSeq = m.seq;
            // The customer's own messages and the bot's replies were drawn by this page as they happened.
            if (m.role === "agent" || (m.role === "system" && m.text)) renderMessage(m);
          } else if (ev.event === "status" && ev.data.status !== state.status) {
            if (ACTIVE.has(ev.data.status)) setStatus(ev.data.status, ev.data.status === "waiting_for_agent" ? await queueOf() : {});
            else {
              state.follow = null; // setStatus -> unfollow must not abort this loop mid-iteration
              ctrl.abort();
              setStatus(ev.data.status);
              return;
            }
          }
        }
      } catch (e) {
        if (ctrl.signal.aborted) return;
      }
      await new Promise((res) => setTimeout(res, 2000)); // stream closed (max_s) or dropped: resume after lastSeq
    }
  }

  async function queueOf() {
    try {
      return await api(`/v1/conversations/${encodeURIComponent(state.id)}`);
    } catch {
      return {};
    }
  }

  // -- rating ------------------------------------------------------------------------------------
  function scale(name, question, n, low, high) {
    const group = el("div", { class: "scale", role: "radiogroup", "aria-label": question, "data-scale": name });
    for (let i = 1; i <= n; i++) {
      const b = el("button", {
        type: "button",
        role: "radio",
        "aria-checked": "false",
        "aria-label": `${i} of ${n}${i === 1 ? ` (${low})` : i === n ? ` (${high})` : ""}`,
        "data-value": String(i),
        text: String(i),
      });
      b.addEventListener("click", () => {
        for (const o of group.children) o.setAttribute("aria-checked", String(o === b));
        group.dataset.value = String(i);
        submit.disabled = !rating.querySelector('[data-scale="csat"]').dataset.value;
      });
      group.append(b);
    }
    return el(
      "fieldset",
      {},
      el("legend", { text: question }),
      group,
      el("div", { class: "ends", "aria-hidden": "true" }, el("span", { text: low }), el("span", { text: high })),
    );
  }
  const submit = el("button", { type: "button", class: "primary", disabled: true, text: "Send rating" });
  const skip = el("button", { type: "button", class: "link", text: "Not now" });

  function askRating(closing = false) {
    if (!state.id || state.rated || !rating.hidden) return;
    state.closing = closing;
    rating.textContent = "";
    submit.disabled = true;
    rating.append(
      el("p", { class: "ask", text: "Before you go: how did we do?" }),
      scale("csat", "How satisfied are you with this conversation?", 5, "very unsatisfied", "very satisfied"),
      scale("ces", "How much effort did it take to get what you needed? (optional)", 7, "very little", "a lot"),
      el("div", { class: "row" }, skip, submit),
    );
    rating.hidden = false;
    composer.hidden = true;
    actions.hidden = true;
    rating.querySelector("button[role=radio]").focus();
  }

  function hideRating() {
    rating.hidden = true;
    composer.hidden = false;
    actions.hidden = false;
  }

  submit.addEventListener("click", async () => {
    const csat = Number(rating.querySelector('[data-scale="csat"]').dataset.value);
    const ces = Number(rating.querySelector('[data-scale="ces"]').dataset.value || 0);
    const body = { csat, ...(ces ? { ces } : {}) }; // CES: 1 = effortless .. 7 = a lot of effort, as the API
    submit.disabled = true;
    try {
      await api(`/v1/conversations/${encodeURIComponent(state.id)}/feedback`, { method: "POST", body });
      state.rated = true;
      save({ rated: true });
      rating.textContent = "";
      rating.append(el("p", { class: "thanks", role: "status", text: "Thank you for your feedback!" }));
      setTimeout(() => {
        hideRating();
        if (state.closing) close(true);
      }, 1500);
    } catch (e) {
      submit.disabled = false;
      rating.append(el("p", { class: "error", text: `Could not send your rating (${e.message}).` }));
    }
  });
  skip.addEventListener("click", () => {
    state.rated = true; // asked once per conversation
    save({ rated: true });
    hideRating();
    if (state.closing) close(true);
  });

  // -- open / close --------------------------------------------------------------------------------
  function open() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    launcher.hidden = true;
    scroll();
    (rating.hidden ? input : rating.querySelector("button") || input).focus();
  }

  function close(force = false) {
    // Closing a conversation the customer took part in asks for a rating first (once).
    if (!force && !state.rated && state.customerMessages > 0 && rating.hidden && state.id) {
      askRating(true);
      return;
    }
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 120)}px`;
  }

  launcher.addEventListener("click", open);
  closeBtn.addEventListener("click", () => close());
  humanBtn.addEventListener("click", talkToPerson);
  composer.addEventListener("submit", (e) => {
    e.preventDefault();
    send(input.value);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send(input.value);
    }
  });
  input.addEventListener("input", autosize);
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.preventDefault();
      close(!rating.hidden);
    }
  });

  window.__cxaWidget = { open, close, get conversationId() { return state.id; } };
  const start = () => {
    document.body.append(host);
    restore().then(() => {
      if (load().open) open();
    });
  };
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
  window.addEventListener("pagehide", () => save({ open: !panel.hidden }));
})();
