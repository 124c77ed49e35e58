// The dashboard's client: one EventSource, named events, and gap/repeat accounting by id.
"use strict";

const client = Math.random().toString(36).slice(2);
const $ = (id) => document.getElementById(id);
const state = { received: 0, lastId: null, reconnects: 0, gaps: 0, repeats: 0, opened: 0 };
// Everything the page received, for the end-to-end tests to compare with what was sent.
window.sseLog = { events: [], samples: [], opens: 0 };

function setStatus(kind, text) {
  const pill = $("status");
  pill.className = "pill " + kind;
  pill.dataset.state = kind;
  pill.textContent = text;
}

function track(event) {
  state.received += 1;
  const id = Number(event.lastEventId.split(":").pop()); // MemoryBroker ids: "<epoch>:<seq>"
  if (state.lastId !== null) {
    if (id <= state.lastId) state.repeats += 1;
    else if (id > state.lastId + 1) state.gaps += id - state.lastId - 1;
  }
  state.lastId = id;
  window.sseLog.events.push({ type: event.type, id: event.lastEventId, data: event.data });
  $("received").textContent = state.received;
  $("last-id").textContent = event.lastEventId;
  $("gaps").textContent = state.gaps;
  $("repeats").textContent = state.repeats;
}

const tickers = {};
function onPrice(event) {
  track(event);
  const p = JSON.parse(event.data);
  let row = tickers[p.symbol];
  if (!row) {
    row = document.createElement("div");
    row.className = "ticker";
    row.innerHTML = '<span class="sym"></span><span class="px"></span><span class="chg"></span>';
    $("prices").appendChild(row);
    tickers[p.symbol] = row;
  }
  row.querySelector(".sym").textContent = p.symbol;
  row.querySelector(".px").textContent = p.price.toFixed(2);
  const chg = row.querySelector(".chg");
  chg.textContent = (p.change >= 0 ? "▲ " : "▼ ") + Math.abs(p.change).toFixed(2);
  chg.className = "chg " + (p.change >= 0 ? "up" : "down");
}

function onMetrics(event) {
  track(event);
  const m = JSON.parse(event.data);
  $("cpu").textContent = m.cpu.toFixed(1) + " %";
  $("cpu-bar").style.width = Math.max(0, Math.min(100, m.cpu)) + "%";
  $("mem").textContent = m.memory.toFixed(1) + " %";
  $("mem-bar").style.width = m.memory + "%";
  $("rps").textContent = m.requests_per_second;
}

function onLog(event) {
  track(event);
  const item = document.createElement("li");
  item.textContent = event.data; // multi-line entries keep their lines (white-space: pre)
  item.className = event.data.includes(" WARN ") ? "warn" : "";
  const logs = $("logs");
  logs.prepend(item);
  while (logs.children.length > 12) logs.lastChild.remove();
}

function connect() {
  const source = new EventSource("/stream?client=" + client);
  source.onopen = () => {
    window.sseLog.opens += 1;
    state.opened += 1;
    if (state.opened > 1) {
      state.reconnects += 1;
      $("reconnects").textContent = state.reconnects;
      $("resumed").textContent = state.lastId === null ? "–" : state.lastId;
    }
    setStatus("open", "live");
  };
  source.onerror = () => {
    setStatus(source.readyState === EventSource.CLOSED ? "closed" : "connecting",
              source.readyState === EventSource.CLOSED ? "closed" : "reconnecting…");
  };
  source.addEventListener("price", onPrice);
  source.addEventListener("metrics", onMetrics);
  source.addEventListener("log", onLog);
  source.addEventListener("reset", () => location.reload());
  return source;
}

function loadSamples() {
  const samples = new EventSource("/stream/samples");
  const show = (event) => {
    window.sseLog.samples.push({ type: event.type, id: event.lastEventId, data: event.data });
    const row = document.createElement("tr");
    for (const text of [event.lastEventId, event.type, JSON.stringify(event.data)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    }
    $("samples").appendChild(row);
    if (event.lastEventId === "s8") samples.close(); // the last sample: don't reconnect
  };
  samples.addEventListener("sample", show);
  samples.addEventListener("message", show);
}

$("drop").addEventListener("click", () => {
  setStatus("connecting", "dropping…");
  fetch("/drop?client=" + client, { method: "POST" });
});

connect();
loadSamples();
