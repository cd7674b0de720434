// One execution: its steps and channel values, followed live; a waiting interrupt can be resumed here.
"use strict";

const execution = {id: null, feed: null};
const byId = id => document.getElementById(id);

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map(cells => {
    const tr = document.createElement("tr");
    for (const text of cells) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }
    return tr;
  }));
}

function itemText(item) {
  return `${item.ordinal}:${item.node}${item.outcome ? ` ${item.outcome}` : " …"}`;
}

async function loadExecution() {
  const response = await fetch(`/api/executions/${encodeURIComponent(execution.id)}`);
  if (!response.ok) { byId("execution-status").textContent = `not found (${response.status})`; return false; }
  const view = await response.json();
  byId("execution-status").textContent = `${view.execution_id} · ${view.workflow} v${view.version} · ${view.status}` +
    (view.reason ? ` · ${view.reason}` : "");
  byId("execution-values").textContent = JSON.stringify(view.values, null, 1);
  fill(byId("execution-steps"), view.steps.map(s => [String(s.step), s.status, s.items.map(itemText).join(", "),
    (s.writes || []).map(w => `${w[1]}→${w[2]}=${JSON.stringify(w[3])}`).join("; ")]));
  const waiting = view.interrupt;
  byId("execution-interrupt").hidden = !waiting;
  if (waiting) {
    byId("interrupt-id").textContent = waiting.id;
    byId("interrupt-payload").textContent = JSON.stringify(waiting.payload);
  }
  byId("execution-status").dataset.status = view.status;
  return true;
}

async function openExecution(id) {
  execution.id = id;
  if (execution.feed) execution.feed.close();
  execution.feed = null;
  if (!await loadExecution()) {  // not signed in yet, or not started yet: look again shortly
    setTimeout(() => { if (execution.id === id && !execution.feed) openExecution(id); }, 2000);
    return;
  }
  execution.feed = new EventSource(`/api/executions/${encodeURIComponent(id)}/events`);
  for (const type of ["ExecutionStarted", "StepStarted", "StepItemFinished", "StepCommitted", "ExecutionInterrupted",
                      "ExecutionResumed", "ExecutionCompleted", "ExecutionFailed", "ExecutionCancelled"]) {
    execution.feed.addEventListener(type, loadExecution);
  }
}

async function resume() {
  byId("resume-error").textContent = "";
  let payload;
  try { payload = JSON.parse(byId("resume-payload").value); }
  catch (e) { byId("resume-error").textContent = `payload is not JSON: ${e.message}`; return; }
  const response = await fetch(`/api/executions/${encodeURIComponent(execution.id)}/resume`, {method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({interrupt_id: byId("interrupt-id").textContent, payload})});
  if (!response.ok) byId("resume-error").textContent = (await response.json()).error;
}

byId("execution-open").addEventListener("submit", event => {
  event.preventDefault();
  const id = byId("execution-id").value.trim();
  if (id) openExecution(id);
});
byId("resume").addEventListener("click", resume);
const asked = new URLSearchParams(location.search).get("execution");
if (asked) { byId("execution-id").value = asked; openExecution(asked); }
