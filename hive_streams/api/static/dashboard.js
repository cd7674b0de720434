// The live dashboard: one snapshot (with the log position it reflects), then the cluster feed.
"use strict";

const TASK_STATUS = {TaskSubmitted: "submitted", TaskBlocked: "blocked", TaskValidated: "queued",
  TaskRejected: "rejected", TaskAssigned: "assigned", TaskStarted: "running", TaskRetryScheduled: "queued",
  TaskCompleted: "completed", TaskFailed: "failed", TaskCancelled: "cancelled"};
const NODE_STATUS = {NodeStarted: "running", NodeCompleted: "completed", NodeFailed: "failed"};
const QUEUED = new Set(["queued", "blocked"]);

const state = {tasks: new Map(), agents: new Map(), graphs: new Map(), nodeLog: new Map(), failures: [],
               alerts: new Map(), agentTypes: new Set(), alertTypes: new Set(), selected: null, dirty: false};
const $ = id => document.getElementById(id);

function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function badge(text) {
  const td = document.createElement("td"), span = document.createElement("span");
  span.className = `badge ${text}`;
  span.textContent = text;
  td.appendChild(span);
  return td;
}

function meter(fraction, label) {
  const td = document.createElement("td");
  td.innerHTML = `<span class="meter"><i style="width:${Math.round(100 * Math.min(1, fraction))}%"></i></span> `;
  td.append(label);
  return td;
}

function touch() {
  if (!state.dirty) {
    state.dirty = true;
    requestAnimationFrame(render);
  }
}

// --- applying events --------------------------------------------------------------------------

function applyTask(ev) {
  const t = state.tasks.get(ev.task_id) || {task_id: ev.task_id, seq: 0, status: "new", name: ev.task_id, priority: 0};
  state.tasks.set(ev.task_id, t);
  if (ev.seq <= t.seq) return;  // the snapshot already has it, or a duplicate
  t.seq = ev.seq;
  t.updated_at = ev.at;
  if (ev.type === "TaskSubmitted") {
    Object.assign(t, {name: ev.name, priority: ev.priority, requester: ev.requester, submitted_at: ev.at});
    state.graphs.set(ev.task_id, {seq: ev.seq, status: {}, progress: {},
      nodes: ev.nodes.map(n => ({id: n.id, kind: n.kind, depends_on: n.depends_on}))});
    if (!state.selected) state.selected = ev.task_id;
  }
  if (ev.type === "TaskValidated") t.priority = ev.priority;
  if (ev.type === "TaskAssigned") t.agent_id = ev.agent_id;
  if (ev.type === "TaskRetryScheduled") t.agent_id = null;
  if (TASK_STATUS[ev.type]) t.status = TASK_STATUS[ev.type];
  if (ev.type === "TaskSubmitted" && ev.queued) t.status = "queued";  // valid at once: no TaskValidated follows
  if (ev.type.startsWith("Node") && t.status === "assigned") t.status = "running";  // a node's report starts its task
  if (ev.type === "TaskCompleted") {  // a fast task reports its outputs only here
    const graph = state.graphs.get(ev.task_id);
    if (graph) for (const n of graph.nodes) graph.status[n.id] = "completed";
  }
  if (["TaskFailed", "TaskRejected", "TaskCancelled"].includes(ev.type)) {
    t.reason = ev.reason;
    state.failures.unshift({task_id: ev.task_id, name: t.name, status: t.status, reason: ev.reason, updated_at: ev.at});
    state.failures.length = Math.min(state.failures.length, 20);
  }
  if (ev.type.startsWith("Node")) {
    const log = state.nodeLog.get(ev.task_id) || [];
    log.push(ev);
    if (log.length > 5000) log.shift();
    state.nodeLog.set(ev.task_id, log);
    const graph = state.graphs.get(ev.task_id);
    if (graph) applyNode(graph, ev);
  }
}

function applyNode(graph, ev) {
  if (ev.seq <= graph.seq) return;
  graph.seq = ev.seq;
  if (NODE_STATUS[ev.type]) graph.status[ev.node_id] = NODE_STATUS[ev.type];
  if (ev.type === "NodeProgress") graph.progress[ev.node_id] = ev.progress;
}

function applyAgent(ev) {
  const a = state.agents.get(ev.agent_id) || {agent_id: ev.agent_id, seq: 0, status: "unknown", slots: 0, holding: 0};
  state.agents.set(ev.agent_id, a);
  if (ev.seq <= a.seq) return;
  a.seq = ev.seq;
  if (ev.type === "AgentRegistered") Object.assign(a, {name: ev.name, slots: ev.slots, capabilities: ev.capabilities});
  if (ev.type === "AgentStatusChanged") a.status = ev.status;
  if (ev.type === "AgentHeartbeat" || ev.type === "AgentRegistered" || ev.type === "AgentStatusChanged") a.last_seen = ev.at;
  if (ev.type === "AgentHeartbeat") a.cpu_percent = ev.cpu_percent;
  if (ev.type === "SlotReserved") a.holding += 1;
  if (ev.type === "SlotReleased") a.holding = Math.max(0, a.holding - 1);
  if (typeof ev.reputation === "number") a.reputation = ev.reputation;
}

function applyAlert(ev) {  // the latest event of each alert: raised (open) or resolved
  const known = state.alerts.get(ev.alert_id);
  if (known && known.seq >= ev.seq) return;
  state.alerts.set(ev.alert_id, {...(known || {}), ...ev, open: ev.type === "AlertRaised"});
}

function onEvent(message) {
  const ev = JSON.parse(message.data);
  if (state.alertTypes.has(ev.type)) applyAlert(ev);
  else if (state.agentTypes.has(ev.type)) applyAgent(ev); else applyTask(ev);
  touch();
}

// --- loading ----------------------------------------------------------------------------------

async function loadGraph(taskId) {
  if (state.graphs.has(taskId)) return;
  const response = await fetch(`/api/tasks/${encodeURIComponent(taskId)}`);
  if (!response.ok || state.graphs.has(taskId)) return;
  const task = await response.json();
  const graph = {seq: task.seq, progress: {}, nodes: task.nodes,
                 status: Object.fromEntries(task.nodes.map(n => [n.id, n.status]))};
  for (const ev of state.nodeLog.get(taskId) || []) applyNode(graph, ev);  // what came while it loaded
  state.graphs.set(taskId, graph);
  touch();
}

async function loadAgentStatus() {
  const response = await fetch("/api/status/agents").catch(() => null);  // the operator view, when present
  if (!response || !response.ok) return;
  for (const row of (await response.json()).agents || []) {
    const a = state.agents.get(row.agent_id);
    if (a && typeof row.reputation === "number") a.reputation = row.reputation;
  }
  touch();
}

// --- signing in: the token becomes an HttpOnly cookie that every fetch and the EventSource send ----

function showLogin(message) {
  $("connection").dataset.state = "signed-out";
  $("connection").textContent = "signed out";
  $("login").hidden = false;
  $("logout").hidden = true;
  $("login-error").textContent = message || "";
}

async function signIn(event) {
  event.preventDefault();
  const response = await fetch("/api/session", {method: "POST", headers: {"content-type": "application/json"},
                                                body: JSON.stringify({token: $("login-token").value.trim()})});
  if (!response.ok) {
    showLogin((await response.json().catch(() => ({}))).error || `refused (${response.status})`);
    return;
  }
  location.reload();
}

async function signOut() {
  await fetch("/api/session", {method: "DELETE"});
  location.reload();
}

async function start() {
  const me = await (await fetch("/api/session")).json();
  if (!me.signed_in) { showLogin(); return; }
  $("logout").hidden = false;
  $("logout").title = `${me.account} (${me.roles.join(", ")})`;
  const answer = await fetch("/api/views/snapshot");
  if (!answer.ok) { showLogin(`${me.account} may not view the cluster (${answer.status})`); return; }
  const snapshot = await answer.json();
  for (const t of snapshot.tasks) state.tasks.set(t.task_id, t);
  for (const a of snapshot.agents) state.agents.set(a.agent_id, a);
  state.failures = snapshot.failures;
  const recent = [...state.tasks.values()].sort((x, y) => y.updated_at - x.updated_at)[0];
  if (recent) select(recent.task_id);
  loadAgentStatus();
  const feed = new EventSource(`/api/events?last_event_id=${encodeURIComponent(snapshot.position)}`);
  state.agentTypes = new Set(snapshot.event_types.agent);
  state.alertTypes = new Set(snapshot.event_types.alert || []);
  for (const type of snapshot.event_types.task.concat(snapshot.event_types.agent, [...state.alertTypes])) {
    feed.addEventListener(type, onEvent);
  }
  feed.onopen = () => { $("connection").dataset.state = "live"; $("connection").textContent = "live"; };
  feed.onerror = () => {
    if (feed.readyState === EventSource.CLOSED) { showLogin("the session ended: sign in again"); return; }
    $("connection").dataset.state = "reconnecting"; $("connection").textContent = "reconnecting";
  };
  touch();
  setInterval(touch, 5000);  // refreshes the "seen … ago" texts; no requests
}

function select(taskId) {
  state.selected = taskId;
  loadGraph(taskId);
  touch();
}

// --- rendering --------------------------------------------------------------------------------

function render() {
  state.dirty = false;
  const tasks = [...state.tasks.values()].sort((x, y) => (y.updated_at || 0) - (x.updated_at || 0));
  const rows = tasks.slice(0, 60).map(t => {
    const tr = document.createElement("tr");
    tr.dataset.taskId = t.task_id;
    tr.dataset.status = t.status;
    if (t.task_id === state.selected) tr.className = "selected";
    tr.append(cell(t.name || t.task_id), badge(t.status), cell(t.priority ?? ""), cell(t.agent_id || ""), cell(ago(t.updated_at)));
    tr.title = t.task_id;
    tr.onclick = () => select(t.task_id);
    return tr;
  });
  $("tasks").replaceChildren(...rows);
  const open = tasks.filter(t => !["completed", "failed", "cancelled", "rejected"].includes(t.status)).length;
  const agents = [...state.agents.values()];
  $("summary").textContent = `${state.tasks.size} tasks · ${open} open · ${agents.filter(a => a.status === "online").length}/${agents.length} agents online`;
  renderGraph();
  renderAgents(agents);
  renderQueues(tasks);
  renderFailures();
  renderAlerts();
}

function renderAlerts() {
  const alerts = [...state.alerts.values()].sort((x, y) => (y.open - x.open) || (y.at - x.at)).slice(0, 30);
  const items = alerts.map(a => {
    const li = document.createElement("li");
    li.dataset.alertId = a.alert_id;
    li.dataset.open = a.open;
    li.innerHTML = `<b></b> <span class="badge"></span> <span class="reason"></span> <span class="muted"></span>`;
    li.children[0].textContent = `${a.rule} · ${a.key}`;
    li.children[1].textContent = a.open ? a.severity : "resolved";
    if (a.open) li.children[1].classList.add("failed");
    li.children[2].textContent = a.message || "";
    li.children[3].textContent = ago(a.at);
    return li;
  });
  $("alerts").replaceChildren(...(items.length ? items : [Object.assign(document.createElement("li"), {className: "empty", textContent: "no alerts"})]));
}

function renderGraph() {
  const graph = state.graphs.get(state.selected), task = state.tasks.get(state.selected);
  $("graph-title").textContent = task ? `${task.name} · ${task.status}` : "select a task";
  if (graph) drawGraph($("graph"), graph);
  else $("graph").innerHTML = '<p class="empty">no task selected</p>';
}

function renderAgents(agents) {
  const rows = agents.sort((x, y) => x.agent_id.localeCompare(y.agent_id)).map(a => {
    const tr = document.createElement("tr");
    tr.dataset.agentId = a.agent_id;
    tr.dataset.status = a.status;
    const reputation = typeof a.reputation === "number" ? a.reputation.toFixed(2) : "–";
    tr.append(cell(a.name || a.agent_id), badge(a.status), meter(a.slots ? a.holding / a.slots : 0, `${a.holding}`),
              cell(a.slots), cell(reputation), cell(ago(a.last_seen)));
    return tr;
  });
  $("agents").replaceChildren(...rows);
}

function renderQueues(tasks) {
  const counts = new Map();
  for (const t of tasks) if (QUEUED.has(t.status)) counts.set(t.priority, (counts.get(t.priority) || 0) + 1);
  const most = Math.max(1, ...counts.values());
  const rows = [...counts.entries()].sort((a, b) => b[0] - a[0]).map(([priority, n]) => {
    const div = document.createElement("div");
    div.className = "queue-row";
    div.innerHTML = `<b>prio ${priority}</b><span class="meter"><i style="width:${100 * n / most}%"></i></span> ${n}`;
    return div;
  });
  $("queues").replaceChildren(...(rows.length ? rows : [Object.assign(document.createElement("p"), {className: "empty", textContent: "nothing queued"})]));
}

function renderFailures() {
  const items = state.failures.map(f => {
    const li = document.createElement("li");
    li.innerHTML = `<b></b> <span class="badge"></span> <span class="reason"></span> <span class="muted"></span>`;
    li.children[0].textContent = f.name || f.task_id;
    li.children[1].textContent = f.status;
    li.children[1].className = `badge ${f.status}`;
    li.children[2].textContent = f.reason || "";
    li.children[3].textContent = ago(f.updated_at);
    return li;
  });
  $("failures").replaceChildren(...(items.length ? items : [Object.assign(document.createElement("li"), {className: "empty", textContent: "none"})]));
}

$("login").addEventListener("submit", signIn);
$("logout").addEventListener("click", signOut);
start();
