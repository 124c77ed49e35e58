// POST a prompt and show the streamed answer. EventSource can only GET, so this reads the
// event stream from a fetch() response body and parses it itself; Stop aborts the fetch.

// Yields {type, data, lastEventId} for each event of a fetch() response body, as the WHATWG
// "event stream interpretation" says (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// UTF-8 (TextDecoderStream drops one leading BOM), lines end with CRLF, LF or CR, ":" starts a
// comment, one space after the colon is dropped, data lines are joined with LF, a blank line
// dispatches, and an event cut off by the end of the stream is dropped.
async function* readEventStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  let type = "";
  let lastEventId = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const end = buffer.search(/[\r\n]/);
        // A CR at the end of the chunk may be the first half of a CRLF: wait for more.
        if (end < 0 || (buffer[end] === "\r" && end === buffer.length - 1)) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(buffer.startsWith("\r\n", end) ? end + 2 : end + 1);
        if (line === "") {
          if (data.length) yield { type: type || "message", data: data.join("\n"), lastEventId };
          data = [];
          type = "";
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") data.push(text);
        else if (field === "event") type = text;
        else if (field === "id" && !text.includes("\0")) lastEventId = text;
        // "retry" only matters to a client that reconnects; this one does not.
      }
    }
  } finally {
    reader.cancel().catch(() => {}); // stop reading (and the request) if the caller broke off
  }
}

const form = document.getElementById("ask");
const promptInput = document.getElementById("prompt");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const answer = document.getElementById("answer");
const status = document.getElementById("status");
// What the page saw, for the tests.
window.chatLog = { tokens: [], states: [] };
let controller = null;

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
  window.chatLog.states.push(state);
}

function setBusy(busy) {
  sendButton.disabled = busy;
  promptInput.disabled = busy;
  stopButton.disabled = !busy;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  controller = new AbortController();
  answer.textContent = "";
  setBusy(true);
  setStatus("waiting", "waiting for the first token…");
  try {
    const response = await fetch("/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ prompt: promptInput.value }),
      signal: controller.signal,
    });
    if (!response.ok) {
      const error = await response.json().catch(() => ({ error: response.statusText }));
      setStatus("error", `${response.status}: ${error.error}`);
      return;
    }
    setStatus("streaming", "streaming…");
    for await (const message of readEventStream(response.body)) {
      if (message.type === "token") {
        const { text } = JSON.parse(message.data);
        window.chatLog.tokens.push(text);
        answer.append(text);
      } else if (message.type === "done") {
        setStatus("done", `done: ${window.chatLog.tokens.length} tokens`);
      }
    }
    if (status.dataset.state === "streaming") setStatus("error", "the stream ended early");
  } catch (error) {
    if (error.name === "AbortError") setStatus("stopped", "stopped");
    else setStatus("error", `error: ${error.message}`);
  } finally {
    controller = null;
    setBusy(false);
  }
});

// Aborting the fetch closes the connection; the server then closes the model's stream.
stopButton.addEventListener("click", () => controller?.abort());
