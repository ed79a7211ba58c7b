// The CX dashboard: headline figures (/v1/metrics), the same over time (/v1/metrics/timeseries, drawn with
// the vendored Chart.js), figures by topic, the worst conversations with a drill-down (transcript,
// scorecard, review), the knowledge gaps (each with a draft to approve), the approved answers with their hits,
// the calibration of the turn confidence (the shipped answerability model's reliability curve and ECE), and the
// latest eval report. Routes that do not exist yet or have no data (scorecard,
// review, eval report) show "not yet" instead of failing.
import { Client, el, fmt, gate, messageNode } from "./common.js";

const client = new Client("cx");
const $ = (id) => document.getElementById(id);
const PERIODS = { "24h": { hours: 24, bucket: "hour" }, "7d": { hours: 24 * 7, bucket: "day" }, "30d": { hours: 24 * 30, bucket: "day" } };
const charts = {};
const COLORS = { bot: "#2f5d50", assumed: "#7fb3a3", agent: "#3b6fb6", unresolved: "#d08a2c", abandoned: "#b5443b", open: "#b9c2bf" };

gate(client, (c) => c.get("/v1/conversations?limit=1"), start);

function start() {
  $("period").addEventListener("change", refresh);
  $("refresh").addEventListener("click", refresh);
  $("sort").addEventListener("change", loadConversations);
  refresh();
  loadEvals();
  loadCalibration();
  loadSimulated();
  const fromHash = location.hash.slice(1);
  if (fromHash) drill(fromHash);
}

function since() {
  const p = PERIODS[$("period").value];
  return new Date(Date.now() - p.hours * 3600 * 1000).toISOString();
}

async function refresh() {
  $("live").textContent = "loading…";
  try {
    await Promise.all([loadFigures(), loadSeries(), loadTopics(), loadConversations(), loadGaps(), loadApproved(), loadLoop()]);
    $("live").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("live").textContent = `not updated: ${e.message}`;
  }
}

function figure(label, value, hint) {
  return el("div", { class: "figure" }, el("span", { class: "value", text: value }), el("span", { class: "label", text: label }), hint ? el("span", { class: "hint", text: hint }) : null);
}

async function loadFigures() {
  const m = await client.get(`/v1/metrics?since=${encodeURIComponent(since())}`);
  $("figures").replaceChildren(
    figure("conversations", String(m.conversations), `${m.open} open`),
    figure("resolved by the bot", fmt.pct(m.bot_resolution_rate), `${fmt.pct(m.bot_confirmed_rate)} confirmed`),
    figure("handed to a person", fmt.pct(m.handoff_rate), `${fmt.pct(m.agent_resolution_rate)} resolved by agents`),
    figure("abandoned", fmt.pct(m.abandonment_rate), `${fmt.pct(m.unresolved_rate)} unresolved`),
    figure("predicted effort", fmt.num(m.predicted_effort_avg, 2), "CES scale, 1 = effortless"),
    figure("CSAT", fmt.num(m.csat_avg, 2), `${m.feedback_count} ratings · CES ${fmt.num(m.ces_avg, 2)}`),
    figure("agent wait p50", m.agent_wait_s_p50 === null ? "—" : `${Math.round(m.agent_wait_s_p50)} s`, `p95 ${m.agent_wait_s_p95 === null ? "—" : `${Math.round(m.agent_wait_s_p95)} s`}`),
  );
}

function draw(id, config) {
  if (!window.Chart) return; // the vendored file failed to load: the tables still work
  charts[id]?.destroy();
  charts[id] = new window.Chart($(id), {
    ...config,
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      ...config.options,
    },
  });
}

async function loadSeries() {
  const p = PERIODS[$("period").value];
  const ts = await client.get(`/v1/metrics/timeseries?bucket=${p.bucket}&since=${encodeURIComponent(since())}`);
  const labels = ts.items.map((b) => {
    const d = new Date(b.since);
    return p.bucket === "hour" ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : d.toLocaleDateString([], { month: "short", day: "numeric" });
  });
  const out = (k) => ts.items.map((b) => b.outcomes[k] || 0);
  const line = (label, data, color, extra = {}) => ({ label, data, borderColor: color, backgroundColor: color, spanGaps: true, tension: 0.25, pointRadius: 2, ...extra });
  draw("chart-outcomes", {
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: "bot (confirmed)", data: out("resolved_by_bot_confirmed"), backgroundColor: COLORS.bot },
        { label: "bot (assumed)", data: out("resolved_by_bot_assumed"), backgroundColor: COLORS.assumed },
        { label: "agent", data: out("resolved_by_agent"), backgroundColor: COLORS.agent },
        { label: "unresolved", data: out("unresolved"), backgroundColor: COLORS.unresolved },
        { label: "abandoned", data: out("abandoned"), backgroundColor: COLORS.abandoned },
        { label: "open", data: out("open"), backgroundColor: COLORS.open },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });
  const rate = (k) => ts.items.map((b) => (b.conversations ? b[k] * 100 : null));
  draw("chart-rates", {
    type: "line",
    data: { labels, datasets: [line("handoff %", rate("handoff_rate"), COLORS.agent), line("bot resolution %", rate("bot_resolution_rate"), COLORS.bot), line("abandoned %", rate("abandonment_rate"), COLORS.abandoned)] },
    options: { scales: { y: { min: 0, max: 100 } } },
  });
  draw("chart-effort", {
    type: "line",
    data: { labels, datasets: [line("predicted effort", ts.items.map((b) => b.predicted_effort_avg), COLORS.unresolved), line("reported CES", ts.items.map((b) => b.ces_avg), COLORS.agent)] },
    options: { scales: { y: { min: 1, max: 7 } } },
  });
  draw("chart-csat", {
    type: "line",
    data: { labels, datasets: [line("CSAT", ts.items.map((b) => b.csat_avg), COLORS.bot)] },
    options: { scales: { y: { min: 1, max: 5 } } },
  });
}

async function loadTopics() {
  const t = await client.get(`/v1/metrics/topics?since=${encodeURIComponent(since())}`);
  const rows = t.items.map((m) =>
    el("tr", {}, el("th", { scope: "row", text: m.topic }), el("td", { text: String(m.conversations) }), el("td", { text: fmt.pct(m.bot_resolution_rate) }), el("td", { text: fmt.pct(m.handoff_rate) }), el("td", { text: fmt.pct(m.abandonment_rate) }), el("td", { text: fmt.num(m.predicted_effort_avg, 1) }), el("td", { text: fmt.num(m.csat_avg, 1) })),
  );
  $("topics").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "7", class: "empty", text: "No conversations in this period." }))]));
}

async function loadConversations() {
  const list = await client.get(`/v1/conversations?sort=${$("sort").value}&limit=25&since=${encodeURIComponent(since())}`);
  const rows = list.items.map((c) => {
    const tr = el(
      "tr",
      { tabindex: "0", "data-id": c.id, "aria-label": `Open conversation ${c.id}` },
      el("td", { text: fmt.when(c.started_at) }),
      el("td", { text: c.topic || "—" }),
      el("td", {}, el("span", { class: `pill ${c.outcome}`, text: c.outcome.replace(/_/g, " ") })),
      el("td", { text: fmt.num(c.effort, 1) }),
      el("td", { text: c.csat === null ? "—" : String(c.csat) }),
      el("td", { text: String(c.customer_turns) }),
      el("td", {}, c.customer_id || "anonymous", c.simulated ? el("span", { class: "pill simulated", text: "simulated" }) : null),
    );
    tr.addEventListener("click", () => drill(c.id));
    tr.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        drill(c.id);
      }
    });
    return tr;
  });
  $("conversations").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "7", class: "empty", text: "No conversations in this period." }))]));
}

// -- drill-down: transcript, scorecard, review -----------------------------------------------------

async function drill(id) {
  history.replaceState(null, "", `#${id}`);
  for (const tr of $("conversations").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.id === id);
  const box = $("drill");
  box.replaceChildren(el("h2", { text: "Conversation" }), el("p", { class: "empty", text: "Loading…" }));
  const path = `/v1/conversations/${encodeURIComponent(id)}`;
  let t;
  try {
    t = await client.get(path);
  } catch (e) {
    box.replaceChildren(el("h2", { text: "Conversation" }), el("p", { class: "error", text: `Could not load it: ${e.message}` }));
    return;
  }
  const [card, review] = await Promise.all([client.maybe(`${path}/scorecard`).catch(() => null), client.maybe(`${path}/review`).catch(() => null)]);
  box.replaceChildren(
    el("div", { class: "head" }, el("h2", { text: "Conversation" }), el("code", { text: id })),
    el("p", { class: "source", text: `${t.status} · outcome ${t.outcome || "—"} · effort ${fmt.num(t.effort, 1)} · ${t.customer_id || "anonymous"}${t.verified ? " (verified)" : ""}` }),
    scorecard(card),
    reviewForm(id, review),
    el("h3", { text: "Transcript" }),
    el("ol", { class: "transcript", "aria-label": "Transcript" }, t.messages.map(messageNode)),
    t.signals.length ? el("details", {}, el("summary", { text: `Signals (${t.signals.length})` }), el("ul", { class: "signals" }, t.signals.map((s) => el("li", { text: `${s.kind}${s.value !== null && s.value !== undefined ? ` = ${s.value}` : ""}` })))) : null,
  );
  box.focus();
}

function scorecard(card) {
  const wrap = el("section", { class: "scorecard", "aria-label": "Scorecard" }, el("h3", { text: "Scorecard" }));
  if (!card) {
    wrap.append(el("p", { class: "empty", text: "Not scored yet." }));
    return wrap;
  }
  const rows = Object.entries(card.scores || {}).map(([name, v]) =>
    el(
      "tr",
      {},
      el("th", { scope: "row", text: name.replace(/_/g, " ") }),
      el("td", {}, v === null ? el("span", { class: "muted", text: "n/a" }) : el("span", { class: `score ${v >= 0.7 ? "good" : v >= 0.4 ? "fair" : "poor"}`, text: Number(v).toFixed(2) })),
      el("td", { class: "reason", text: (card.reasons || {})[name] || "" }),
      el("td", { class: "muted", text: (card.evaluators || {})[name] || "" }),
    ),
  );
  wrap.append(
    el("p", { class: "source", text: `by ${card.evaluator || "?"}${card.scored_at ? ` · ${fmt.when(card.scored_at)}` : ""}` }),
    el("table", { class: "table" }, el("tbody", {}, rows)),
  );
  if ((card.notes || []).length) wrap.append(el("ul", { class: "notes" }, card.notes.map((n) => el("li", { text: n }))));
  return wrap;
}

function reviewForm(id, latest) {
  const form = el("form", { class: "review", "aria-label": "Review" });
  const label = (v) => el("label", { class: "check" }, el("input", { type: "radio", name: "label", value: v, checked: latest?.label === v, required: true }), ` ${v}`);
  const tags = el("input", { name: "tags", placeholder: "tags, comma separated", value: (latest?.tags || []).join(", "), "aria-label": "Tags" });
  const note = el("input", { name: "note", placeholder: "note (optional)", value: latest?.note || "", maxlength: "4000", "aria-label": "Note" });
  const msg = el("span", { class: "msg", role: "status", text: latest ? `last review: ${latest.label}${latest.reviewer ? ` by ${latest.reviewer}` : ""}` : "not reviewed yet" });
  form.append(el("h3", { text: "Review" }), el("div", { class: "row" }, label("good"), label("bad"), tags, note, el("button", { type: "submit", text: "Save review" }), msg));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = {
      label: data.get("label"),
      tags: String(data.get("tags") || "").split(",").map((s) => s.trim()).filter(Boolean),
      reviewer: "cx dashboard",
      ...(String(data.get("note") || "").trim() ? { note: String(data.get("note")).trim() } : {}),
    };
    try {
      await client.post(`/v1/conversations/${encodeURIComponent(id)}/review`, body);
      msg.textContent = `saved: ${body.label}`;
    } catch (err) {
      msg.textContent = err.status === 404 || err.status === 405 ? "reviews are not available on this server yet" : `not saved: ${err.message}`;
    }
  });
  return form;
}

// -- eval report -------------------------------------------------------------------------------------

async function loadEvals() {
  const box = $("evals");
  let report;
  try {
    report = await client.maybe("/v1/evals/latest");
  } catch (e) {
    box.replaceChildren(el("h2", { text: "Latest eval report" }), el("p", { class: "error", text: e.message }));
    return;
  }
  if (!report) {
    box.replaceChildren(el("h2", { text: "Latest eval report" }), el("p", { class: "empty", text: "No eval run yet (cxa eval …)." }));
    return;
  }
  const cmp = report.comparison || { rows: [], regressions: 0, baseline: null };
  const regressed = new Set(cmp.rows.filter((r) => r.regressed).map((r) => `${r.benchmark}/${r.metric}`));
  const byKey = Object.fromEntries(cmp.rows.map((r) => [`${r.benchmark}/${r.metric}`, r]));
  const rows = [];
  for (const [name, b] of Object.entries(report.benchmarks || {})) {
    for (const [metric, value] of Object.entries(b.metrics || {})) {
      const key = `${name}/${metric}`;
      const c = byKey[key];
      rows.push(
        el(
          "tr",
          { class: regressed.has(key) ? "regressed" : null },
          el("th", { scope: "row", text: name }),
          el("td", { text: metric }),
          el("td", { text: fmt.num(value, 3) }),
          el("td", { text: c && c.baseline !== null ? fmt.num(c.baseline, 3) : "—" }),
          el("td", { text: c && c.delta !== null ? `${c.delta >= 0 ? "+" : ""}${fmt.num(c.delta, 3)}` : "—" }),
          el("td", { text: regressed.has(key) ? "▼ regressed" : "" }),
          el("td", { text: `n=${b.n} · ${fmt.num(b.wall_s, 1)} s` }),
        ),
      );
    }
  }
  box.replaceChildren(
    el("h2", { text: "Latest eval report" }),
    el("p", { class: "source", text: `run ${report.run_id} · ${fmt.when(report.started_at)} · ${fmt.num(report.wall_s, 1)} s · baseline ${cmp.baseline || "none"} · ${cmp.regressions} regression${cmp.regressions === 1 ? "" : "s"}` }),
    el("table", { class: "table" }, el("thead", {}, el("tr", {}, ["benchmark", "metric", "current", "baseline", "delta", "", "size"].map((h) => el("th", { scope: "col", text: h })))), el("tbody", {}, rows)),
  );
}

// -- calibration of the turn confidence ------------------------------------------------------------------

const SETS = { doc2dial: { label: "doc2dial (page present vs removed)", color: "#3b6fb6" }, clinc150: { label: "CLINC150 (in-scope vs OOS)", color: "#2f5d50" } };

async function loadCalibration() {
  const box = $("calibration-figures");
  let m;
  try {
    m = await client.maybe("/v1/evals/answerability");
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", text: e.message }));
    return;
  }
  if (!m) {
    box.replaceChildren(el("p", { class: "empty", text: "No answerability model on this server." }));
    return;
  }
  const basis = m.threshold_from === "override" ? "set by CXA_POLICY__HANDOFF_BELOW" : `from costs: wrong answer ${m.cost_wrong_answer}, false handoff ${m.cost_false_handoff}`;
  const figs = [figure("handoff below", fmt.num(m.threshold, 2), basis)];
  for (const [name, f] of Object.entries(m.figures || {})) {
    const oos = f.oos_recall_at_95 === null || f.oos_recall_at_95 === undefined ? "" : ` · OOS recall ${fmt.num(f.oos_recall_at_95, 3)} at 95% in-scope`;
    figs.push(figure(`ECE · ${name}`, fmt.num(f.ece, 3), `AUROC ${fmt.num(f.auroc, 3)}${oos} · n=${f.rows}`));
  }
  box.replaceChildren(...figs);
  $("calibration-source").textContent = `model ${m.version} · trained ${fmt.when(m.trained_at)} · ${m.folds}-fold out-of-fold figures · regenerate: ${m.command}`;
  const rows = [];
  const datasets = [{ label: "perfectly calibrated", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: "#b9c2bf", borderDash: [4, 4], pointRadius: 0, showLine: true }];
  for (const [name, f] of Object.entries(m.figures || {})) {
    const set = SETS[name] || { label: name, color: COLORS.unresolved };
    const pts = f.reliability.filter((b) => b.n > 0).map((b) => ({ x: b.mean_predicted, y: b.observed }));
    datasets.push({ label: set.label, data: pts, borderColor: set.color, backgroundColor: set.color, showLine: true, tension: 0, pointRadius: 3 });
    for (const b of f.reliability) {
      rows.push(el("tr", {}, el("td", { text: `${fmt.num(b.lo, 1)}–${fmt.num(b.hi, 1)}` }), el("td", { text: name }), el("td", { text: b.mean_predicted === null ? "—" : fmt.num(b.mean_predicted, 3) }), el("td", { text: b.observed === null ? "—" : fmt.num(b.observed, 3) }), el("td", { text: String(b.n) })));
    }
  }
  $("reliability-table").tBodies[0].replaceChildren(...rows);
  draw("chart-reliability", {
    type: "scatter",
    data: { datasets },
    options: { interaction: { mode: "nearest", intersect: false }, scales: { x: { min: 0, max: 1, title: { display: true, text: "predicted confidence" } }, y: { min: 0, max: 1, title: { display: true, text: "observed rate answerable" } } } },
  });
}

// -- knowledge gaps and approved answers ---------------------------------------------------------------

const REASONS = { declined: "declined", low_confidence: "handed off", rephrased: "rephrased", escalated: "asked for a person", contradicted: "did not work", rated_badly: "rated badly" };

async function loadGaps() {
  const list = await client.get(`/v1/insights/knowledge-gaps?since=${encodeURIComponent(since())}`);
  const rows = list.items.map((g) =>
    el(
      "tr",
      { "data-gap": g.id },
      el(
        "td",
        {},
        el(
          "details",
          { class: "gap-details" },
          el("summary", { text: g.label }),
          el("h3", { text: "Customers asked" }),
          el("ul", {}, g.examples.map((e) => el("li", { text: e }))),
          el("h3", { text: "Agents answered" }),
          g.agent_answers.length ? el("ul", {}, g.agent_answers.map((a) => el("li", { text: a }))) : el("p", { class: "empty", text: "No agent reply yet." }),
        ),
        g.covered_by ? el("span", { class: "pill covered", text: `covered by ${g.covered_by}` }) : null,
        g.simulated ? el("span", { class: "pill simulated", text: `${g.simulated} simulated` }) : null,
      ),
      el("td", { text: String(g.conversations) }),
      el("td", { text: String(g.customers) }),
      el("td", { class: `trend ${g.trend}`, text: g.trend }),
      el("td", { text: g.topic || "—" }),
      el("td", { text: Object.entries(g.reasons).map(([k, n]) => `${REASONS[k] || k} ${n}`).join(", ") }),
      el(
        "td",
        {},
        el("button", { type: "button", "data-action": "draft-answer", onclick: () => draftFrom(g, "approved_answer"), text: "Draft approved answer" }),
        " ",
        el("button", { type: "button", class: "link", "data-action": "draft-outline", onclick: () => draftFrom(g, "article_outline"), text: "article outline" }),
      ),
    ),
  );
  $("gaps-table").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "7", class: "empty", text: "No knowledge gaps in this period." }))]));
}

async function draftFrom(gap, kind) {
  const box = $("gap-draft");
  box.hidden = false;
  box.replaceChildren(el("p", { class: "empty", text: "Drafting…" }));
  let d;
  try {
    d = await client.post(`/v1/insights/knowledge-gaps/${encodeURIComponent(gap.id)}/draft?since=${encodeURIComponent(since())}`, { kind });
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", text: `No draft: ${e.message}` }));
    return;
  }
  const who = d.written_by === "model" ? "written by the model" : "taken from the agents' replies";
  if (kind === "article_outline") {
    box.replaceChildren(
      el("h3", { text: `Article outline for “${gap.label}” (${who})` }),
      el("textarea", { rows: "12", "aria-label": "Article outline", id: "outline-text" }),
      el("p", { class: "hint", text: "Copy it into your help center, complete it and publish it; the next ingest makes it searchable." }),
    );
    $("outline-text").value = d.outline;
    return;
  }
  const question = el("input", { name: "question", maxlength: "500", required: true, "aria-label": "Question" });
  const variants = el("textarea", { name: "variants", rows: "4", "aria-label": "Variants, one per line" });
  const answer = el("textarea", { name: "answer", rows: "4", maxlength: "4000", required: true, "aria-label": "Answer" });
  const msg = el("span", { class: "msg", role: "status" });
  question.value = d.question;
  variants.value = d.variants.join("\n");
  answer.value = d.answer;
  const form = el(
    "form",
    { "aria-label": "Approve an answer" },
    el("h3", { text: `Approved answer for “${gap.label}” (${who}): edit, then approve` }),
    el("label", {}, "Question", question),
    el("label", {}, "Variants (one per line)", variants),
    el("label", {}, "Answer (plain text, served word for word)", answer),
    el("div", { class: "row" }, el("button", { class: "primary", type: "submit", text: "Approve" }), el("button", { type: "button", class: "link", onclick: () => (box.hidden = true), text: "Cancel" }), msg),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {
      question: question.value,
      answer: answer.value,
      variants: variants.value.split("\n").map((v) => v.trim()).filter(Boolean),
      approved_by: "cx dashboard",
      ...(d.source_conversation_id ? { source_conversation_id: d.source_conversation_id } : {}),
    };
    try {
      const made = await client.post("/v1/approved-answers", body);
      msg.textContent = `approved (${made.id})${made.flags.length ? ` with ${made.flags.length} flag(s) to check` : ""}`;
      await Promise.all([loadGaps(), loadApproved(), loadLoop()]);
    } catch (err) {
      msg.textContent = `not approved: ${err.message}`;
    }
  });
  box.replaceChildren(form);
  question.focus();
}

async function loadApproved() {
  const list = await client.get("/v1/approved-answers");
  const rows = list.items.map((a) => {
    const state = [];
    if (a.stale) state.push(el("span", { class: "pill stale", title: a.stale_reasons.join("; "), text: "stale" }));
    for (const f of a.flags) state.push(el("span", { class: "pill flag", title: f.detail, text: f.kind.replace(/_/g, " ") }));
    if (!state.length) state.push(el("span", { class: "pill approved", text: "ok" }));
    return el(
      "tr",
      { "data-approved": a.id },
      el("td", {}, el("strong", { text: a.question }), a.variants.length ? el("div", { class: "muted", text: `+ ${a.variants.length} variant${a.variants.length === 1 ? "" : "s"}` }) : null),
      el("td", { class: "answer-text", text: a.answer }),
      el("td", { class: "hits", text: String(a.hits) }),
      el("td", { text: a.last_used_at ? fmt.ago(a.last_used_at) : "never" }),
      el("td", {}, state, el("div", { class: "muted", text: `by ${a.approved_by || "?"} · ${fmt.when(a.created_at)}` })),
      el(
        "td",
        {},
        a.flags.length ? el("button", { type: "button", class: "link", onclick: () => client.put(`/v1/approved-answers/${encodeURIComponent(a.id)}`, { clear_flags: true }).then(loadApproved), text: "flags checked" }) : null,
        el("button", { type: "button", class: "link", onclick: () => client.del(`/v1/approved-answers/${encodeURIComponent(a.id)}`).then(() => Promise.all([loadApproved(), loadGaps()])), text: "retire" }),
      ),
    );
  });
  $("approved-table").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6", class: "empty", text: "No approved answers yet: approve one from a knowledge gap, or save an agent's reply in the console." }))]));
}

async function loadLoop() {
  const q = `since=${encodeURIComponent(since())}`;
  const [h, c] = await Promise.all([client.get(`/v1/insights/handoff-quality?${q}`), client.get(`/v1/insights/copilot?${q}`)]);
  const secs = (f) => (f.median_s === null || f.median_s === undefined ? "—" : `${Math.round(f.median_s)} s`);
  const decided = c.sent_as_is + c.edited + c.ignored;
  $("loop-figures").replaceChildren(
    figure("avoidable handoffs", fmt.pct(h.avoidable_rate), `${h.avoidable} of ${h.handoffs} · ${h.avoidable_by_approved} by an approved answer`),
    figure("customers asked again", fmt.pct(h.reask_rate), `${h.reasked} of ${h.replied} answered handoffs${Object.keys(h.reasked_kinds).length ? ` · ${Object.entries(h.reasked_kinds).map(([k, n]) => `${k.replace(/_/g, " ")} ${n}`).join(", ")}` : ""}`),
    figure("copilot drafts shown", String(c.shown), `${c.sent_as_is} sent as is · ${c.edited} edited · ${c.ignored} ignored${decided ? ` (${fmt.pct(c.sent_as_is / decided)} as is)` : ""}`),
    figure("claim to first reply", secs(c.claim_to_first_reply_with), `with a draft (${c.claim_to_first_reply_with.handoffs}) · without: ${secs(c.claim_to_first_reply_without)} (${c.claim_to_first_reply_without.handoffs})`),
  );
}

async function loadSimulated() {
  const s = await client.get("/v1/insights/simulated").catch(() => null);
  const box = $("simulated");
  if (!s || !s.conversations) return;
  box.textContent = `${s.conversations} of these conversations are simulated (cxa demo's two weeks of history, ${fmt.when(s.first)} to ${fmt.when(s.last)}): marked "simulated" below. Start with cxa demo --no-history for none.`;
  box.hidden = false;
}
