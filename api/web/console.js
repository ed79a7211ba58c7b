// The agent console: the handoff queue (polled every 2 s), the packet (summary first, then transcript,
// signals, the customer's profile and events), claim -> reply -> resolve, and the customer's messages live.
// The copilot drafts a reply for a claimed handoff (send as is, edit, ignore); any agent reply can be saved as an
// approved answer in one click.
import { Client, el, fmt, gate, messageNode, richText } from "./common.js";

const client = new Client("agent");
const POLL_MS = 2000;
const state = { tab: "waiting", selected: null, packet: null, follow: null, lists: {}, messages: [], suggestionId: null };
const $ = (id) => document.getElementById(id);

gate(client, (c) => c.get("/v1/handoffs?status=waiting"), start);

function start() {
  const agent = $("agent-id");
  agent.value = localStorage.getItem("cxa:agent-id") || "";
  agent.addEventListener("change", () => localStorage.setItem("cxa:agent-id", agent.value.trim()));
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => {
      state.tab = tab.dataset.status;
      for (const t of document.querySelectorAll("[role=tab]")) t.setAttribute("aria-selected", String(t === tab));
      renderQueue();
    });
  }
  poll();
  setInterval(poll, POLL_MS);
  const fromHash = location.hash.slice(1);
  if (fromHash) open(fromHash);
}

async function poll() {
  try {
    const [waiting, claimed, resolved] = await Promise.all(
      ["waiting", "claimed", "resolved"].map((s) => client.get(`/v1/handoffs?status=${s}`)),
    );
    state.lists = { waiting: waiting.items, claimed: claimed.items, resolved: resolved.items.slice().reverse() };
    $("live").textContent = `updated ${new Date().toLocaleTimeString()}`;
    renderQueue();
  } catch (e) {
    $("live").textContent = `queue not updated: ${e.message}`;
  }
}

function renderQueue() {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.querySelector(".count").textContent = String((state.lists[tab.dataset.status] || []).length);
  }
  const list = $("queue");
  const items = state.lists[state.tab] || [];
  list.replaceChildren(
    ...(items.length
      ? items.map((h) =>
          el(
            "li",
            {},
            el(
              "button",
              {
                class: `item${state.selected === h.id ? " selected" : ""}`,
                "data-handoff": h.id,
                "aria-current": state.selected === h.id ? "true" : null,
                onclick: () => open(h.id),
              },
              el("span", { class: "issue", text: h.summary.issue || "(no summary)" }),
              el(
                "span",
                { class: "sub" },
                el("span", { class: `pill ${h.reason}`, text: h.reason.replace(/_/g, " ") }),
                el("span", { text: h.customer_id || "anonymous" }),
                el("span", { text: fmt.ago(h.created_at) }),
                h.claimed_by ? el("span", { text: `· ${h.claimed_by}` }) : null,
              ),
            ),
          ),
        )
      : [el("li", { class: "empty", text: `No ${state.tab} handoffs.` })]),
  );
}

async function open(id) {
  state.selected = id;
  history.replaceState(null, "", `#${id}`);
  renderQueue();
  const detail = $("detail");
  try {
    const packet = await client.get(`/v1/handoffs/${encodeURIComponent(id)}`);
    const conv = await client.maybe(`/v1/conversations/${encodeURIComponent(packet.conversation_id)}`);
    state.packet = packet;
    renderPacket(packet, conv);
    followConversation(packet);
    detail.focus({ preventScroll: true });
  } catch (e) {
    detail.replaceChildren(el("p", { class: "error", text: `Could not open the handoff: ${e.message}` }));
  }
}

/** An account event's data as "key: value · ..." (nested values as compact JSON). */
function eventText(data) {
  return Object.entries(data || {})
    .map(([k, v]) => `${k.replace(/_/g, " ")}: ${v !== null && typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(" · ");
}

function field(label, value, cls) {
  return [el("dt", { text: label }), el("dd", { class: cls, text: value || "—" })];
}

function renderPacket(p, conv) {
  const s = p.summary;
  const status = conv ? conv.status : p.conversation.status;
  const summary = el(
    "section",
    { class: "card packet", "aria-labelledby": "packet-title" },
    el("h2", { id: "packet-title", text: "Summary" }),
    el("p", { class: "source", text: `${p.reason.replace(/_/g, " ")} · ${fmt.when(p.created_at)} · summary by ${p.summary_source}` }),
    el(
      "dl",
      {},
      field("Issue", s.issue),
      field("Customer wants", s.customer_goal),
      p.customer_note ? field("In their words", p.customer_note) : null,
      [el("dt", { text: "Already tried" }), el("dd", {}, s.attempted.length ? el("ul", {}, s.attempted.map((a) => el("li", {}, richText(a, "plain")))) : "—")],
      field("Context", s.customer_context),
      field("Sentiment", s.sentiment, `sentiment ${s.sentiment}`),
      field("Effort so far", `${Number(s.effort).toFixed(1)} / 7`),
      field("Suggested next step", s.suggested_next_step, "next"),
    ),
  );
  state.messages = p.transcript.slice();
  state.suggestionId = null;
  const transcript = el("ol", { class: "transcript", id: "transcript", "aria-label": "Transcript" }, p.transcript.map((m) => transcriptNode(m, p)));
  const live = p.status === "claimed" && status === "with_agent";
  const copilot = live ? el("section", { class: "card copilot", id: "copilot", "aria-live": "polite" }, el("h3", { text: "Suggested reply" }), el("p", { class: "empty", text: "Drafting…" })) : null;
  const signals = conv && conv.signals.length
    ? el("details", { class: "card" }, el("summary", { text: `Signals (${conv.signals.length})` }), el("ul", { class: "signals" }, conv.signals.map((sg) => el("li", { text: `${fmt.when(sg.at)} · ${sg.kind}${sg.value !== null && sg.value !== undefined ? ` = ${sg.value}` : ""}` }))))
    : null;
  const customer = p.customer
    ? el(
        "section",
        { class: "card" },
        el("h2", { text: "Customer" }),
        el("dl", {}, field("Name", p.customer.name), field("Id", p.customer.id), field("Email", p.customer.email), field("Locale", p.customer.locale), Object.entries(p.customer.attributes || {}).map(([k, v]) => field(k, typeof v === "object" ? JSON.stringify(v) : String(v)))),
        el("h3", { text: "Recent events" }),
        p.customer_events.length
          ? el("ul", { class: "events" }, p.customer_events.slice(0, 10).map((e) => el("li", {}, el("strong", { text: e.type }), el("span", { text: ` ${fmt.when(e.at)} ` }), el("span", { class: "muted", text: eventText(e.data) }))))
          : el("p", { text: "None." }),
      )
    : el("section", { class: "card" }, el("h2", { text: "Customer" }), el("p", { text: "Anonymous (not verified): no profile or history." }));

  $("detail").replaceChildren(
    el("div", { class: "head" }, el("h2", { text: s.issue || "Handoff" }), el("span", { class: `status ${p.status}`, id: "handoff-status", text: `${p.status}${p.claimed_by ? ` by ${p.claimed_by}` : ""} · conversation ${status}` })),
    actions(p, status),
    summary,
    el("div", { class: "columns" }, el("section", { class: "card" }, el("h2", { text: "Transcript" }), transcript, copilot, replyBox(p, status)), el("div", {}, customer, signals, traceCard(p.turns || []))),
  );
  if (copilot) loadSuggestion(p);
}

/** A transcript message; an agent's reply gets a one-click "save as approved answer". */
function transcriptNode(m, p) {
  const node = messageNode(m);
  if (m.role === "agent") {
    const button = el("button", { type: "button", class: "save-approved", "data-save-approved": m.id, text: "Save as approved answer" });
    button.addEventListener("click", () => saveApproved(m, p, button));
    node.append(button);
  }
  return node;
}

const PERSON = /\b(agent|human|person|someone|representative|operator)\b/i;

/** The question an agent's reply answers: the closest customer message before it that asks something. */
function questionFor(m, p) {
  const before = state.messages.filter((x) => x.seq < m.seq && x.role === "customer").reverse();
  const asked = before.find((x) => x.text.trim().split(/\s+/).length >= 3 && !PERSON.test(x.text));
  return (asked || before[0] || { text: p.summary.issue || "" }).text.trim().slice(0, 500);
}

async function saveApproved(m, p, button) {
  button.disabled = true;
  const body = { question: questionFor(m, p), answer: m.text, source_conversation_id: p.conversation_id };
  const agent = $("agent-id").value.trim();
  if (agent) body.approved_by = agent;
  try {
    const made = await client.post("/v1/approved-answers", body);
    button.textContent = `Saved as approved answer${made.flags.length ? ` (${made.flags.map((f) => f.kind.replace(/_/g, " ")).join(", ")}: the CX team will check)` : ""}`;
  } catch (e) {
    button.disabled = false;
    button.textContent = e.status === 409 ? `Already approved: ${e.message}` : `Not saved: ${e.message}`;
  }
}

async function loadSuggestion(p) {
  const box = $("copilot");
  let s;
  try {
    s = await client.get(`/v1/handoffs/${encodeURIComponent(p.id)}/suggestion`);
  } catch (e) {
    box?.replaceChildren(el("h3", { text: "Suggested reply" }), el("p", { class: "error", text: `No suggestion: ${e.message}` }));
    return;
  }
  if (!box || state.packet !== p) return;
  if (!s.text) {
    box.replaceChildren(el("h3", { text: "Suggested reply" }), el("p", { class: "empty", text: "Nothing to suggest: no approved answer, account record or help-center passage answers it." }));
    return;
  }
  const done = (text) => box.replaceChildren(el("h3", { text: "Suggested reply" }), el("p", { class: "muted", text }));
  const send = el("button", { type: "button", class: "primary", id: "suggestion-send", text: "Send as is" });
  const edit = el("button", { type: "button", id: "suggestion-edit", text: "Edit" });
  const ignore = el("button", { type: "button", class: "link", id: "suggestion-ignore", text: "Ignore" });
  send.addEventListener("click", async () => {
    try {
      await client.post(`/v1/conversations/${encodeURIComponent(p.conversation_id)}/agent-messages`, { text: s.text, suggestion_id: s.id });
      done("Sent as is.");
    } catch (e) {
      $("action-msg").textContent = `Reply not sent: ${e.message}`;
    }
  });
  edit.addEventListener("click", () => {
    const reply = $("reply");
    reply.value = s.text;
    state.suggestionId = s.id;
    reply.focus();
    done("In the reply box: edit it, then send.");
  });
  ignore.addEventListener("click", async () => {
    await client.post(`/v1/handoffs/${encodeURIComponent(p.id)}/suggestion/ignore`).catch(() => null);
    done("Ignored.");
  });
  box.replaceChildren(
    el("h3", { text: "Suggested reply" }),
    el("p", { class: "source", text: `drafted from ${s.sources.map((x) => x.replace(/_/g, " ")).join(" + ")}` }),
    el("p", { class: "text", id: "suggestion-text", text: s.text }),
    s.citations.length ? el("ul", { class: "cites" }, s.citations.map((c) => el("li", { title: c.snippet, text: c.title || c.source_id }))) : null,
    el("div", { class: "row" }, send, edit, ignore),
  );
}

// What the assistant did with each customer message: where the reply came from, how sure it was, each step's
// time, and the account tools it called (with their arguments and the records they read).
// Why the confidence came out so: the features that pulled it down most (log-odds), against the threshold.
function answerability(a) {
  if (!a) return null;
  const low = Object.entries(a.contributions || {}).filter(([, v]) => v < 0).sort((x, y) => x[1] - y[1]).slice(0, 3);
  const high = Object.entries(a.contributions || {}).filter(([, v]) => v > 0).sort((x, y) => y[1] - x[1]).slice(0, 2);
  const part = ([k, v]) => `${k.replace(/_/g, " ")} ${v >= 0 ? "+" : ""}${v.toFixed(2)}`;
  const verdict = a.probability < a.threshold ? `below ${a.threshold.toFixed(2)}` : `at or above ${a.threshold.toFixed(2)}`;
  return el("div", { class: "muted answerability", title: `model ${a.model_version}` },
    `answerable p=${a.probability.toFixed(2)} (${verdict})`,
    low.length ? ` · pulled down by ${low.map(part).join(", ")}` : "",
    high.length ? ` · up by ${high.map(part).join(", ")}` : "");
}

function traceCard(turns) {
  if (!turns.length) return null;
  const item = (t) => {
    const steps = Object.entries(t.timings_ms || {}).filter(([k]) => k !== "total").map(([k, v]) => `${k} ${Math.round(v)} ms`).join(" · ");
    const tools = (t.tool_calls || []).map((c) =>
      el("li", { class: "tool" }, el("code", { text: `${c.name}(${Object.entries(c.arguments || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")})` }),
        el("span", { class: "muted", text: ` ${Math.round(c.latency_ms)} ms · read ${c.cited.length ? c.cited.join(", ") : "nothing"}${c.error ? ` · error: ${c.error}` : ""}` })));
    return el("li", {},
      el("strong", { text: `${fmt.when(t.created_at)} · ${t.reply_mode || "no reply"}` }),
      el("span", { text: ` · confidence ${t.confidence === null || t.confidence === undefined ? "—" : Number(t.confidence).toFixed(2)} · ${t.action || "—"} · ${Math.round((t.timings_ms || {}).total || 0)} ms` }),
      t.query ? el("div", { class: "muted", text: `searched: ${t.query}` }) : null,
      answerability(t.answerability),
      steps ? el("div", { class: "muted", text: steps }) : null,
      tools.length ? el("ul", { class: "tools" }, tools) : null,
      t.error ? el("div", { class: "error", text: t.error }) : null);
  };
  return el("details", { class: "card trace" }, el("summary", { text: `Turn trace (${turns.length})` }), el("ol", { class: "trace" }, turns.map(item)));
}

function actions(p, status) {
  const bar = el("div", { class: "actions" });
  if (p.status === "waiting") {
    bar.append(el("button", { class: "primary", id: "claim", onclick: () => claim(p) , text: "Claim" }));
  }
  if (p.status === "claimed") {
    const note = el("input", { id: "resolve-note", placeholder: "closing note (optional)", maxlength: "4000", "aria-label": "Closing note" });
    const solved = el("input", { type: "checkbox", id: "resolve-solved", checked: true });
    bar.append(
      el("label", { class: "check" }, solved, " problem solved"),
      note,
      el("button", { id: "resolve", onclick: () => resolve(p, solved.checked, note.value), text: "Resolve" }),
    );
  }
  if (p.status === "resolved") bar.append(el("p", { text: `Resolved ${fmt.when(p.resolved_at)}${p.note ? ` — “${p.note}”` : ""}` }));
  bar.append(el("p", { class: "msg", role: "alert", id: "action-msg" }));
  return bar;
}

function replyBox(p, status) {
  if (p.status !== "claimed" || status !== "with_agent") return null;
  const text = el("textarea", { id: "reply", rows: "3", maxlength: "4000", "aria-label": "Reply to the customer", placeholder: "Write to the customer… (Ctrl+Enter sends)" });
  const form = el("form", { class: "reply" }, text, el("button", { class: "primary", type: "submit", text: "Send reply" }));
  const send = async () => {
    if (!text.value.trim()) return;
    try {
      const body = { text: text.value, ...(state.suggestionId ? { suggestion_id: state.suggestionId } : {}) };
      await client.post(`/v1/conversations/${encodeURIComponent(p.conversation_id)}/agent-messages`, body);
      text.value = "";
      state.suggestionId = null;
    } catch (e) {
      $("action-msg").textContent = `Reply not sent: ${e.message}`;
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      send();
    }
  });
  return form;
}

async function claim(p) {
  const agent = $("agent-id").value.trim();
  if (!agent) {
    $("action-msg").textContent = "Type your name or agent id first (top bar).";
    $("agent-id").focus();
    return;
  }
  localStorage.setItem("cxa:agent-id", agent);
  try {
    await client.post(`/v1/handoffs/${encodeURIComponent(p.id)}/claim`, { agent_id: agent });
    state.tab = "claimed";
    for (const t of document.querySelectorAll("[role=tab]")) t.setAttribute("aria-selected", String(t.dataset.status === "claimed"));
    await poll();
    await open(p.id);
    $("reply")?.focus();
  } catch (e) {
    $("action-msg").textContent = e.status === 409 ? "Someone else claimed it first." : `Could not claim: ${e.message}`;
  }
}

async function resolve(p, solved, note) {
  try {
    await client.post(`/v1/handoffs/${encodeURIComponent(p.id)}/resolve`, { resolved: solved, ...(note.trim() ? { note: note.trim() } : {}) });
    await poll();
    await open(p.id);
  } catch (e) {
    $("action-msg").textContent = `Could not resolve: ${e.message}`;
  }
}

function followConversation(p) {
  state.follow?.abort();
  const last = Math.max(0, ...p.transcript.map((m) => m.seq));
  state.follow = client.follow(`/v1/conversations/${encodeURIComponent(p.conversation_id)}/events`, (ev) => {
    if (state.packet !== p) return;
    const list = $("transcript");
    if (ev.event === "message" && list && !list.querySelector(`[data-seq="${ev.data.seq}"]`)) {
      state.messages.push(ev.data);
      list.append(transcriptNode(ev.data, p));
      list.lastElementChild.scrollIntoView({ block: "nearest" });
    } else if (ev.event === "status") {
      const st = $("handoff-status");
      if (st && !st.textContent.endsWith(ev.data.status)) {
        st.textContent = st.textContent.replace(/conversation \S+$/, `conversation ${ev.data.status}`);
      }
    }
  }, { after: last });
}
