// Rova dashboard: the serial console. Opens the console proxy's websocket
// (the URL the compute API returned), shows what the guest writes and
// sends each line typed in the form, with a carriage return.
(function () {
  "use strict";
  var out = document.getElementById("serial-out");
  var form = document.getElementById("serial-send");
  var state = document.getElementById("serial-state");
  if (!out || !form) { return; }
  var decoder = new TextDecoder();
  var ws = new WebSocket(out.getAttribute("data-url"), ["binary"]);
  ws.binaryType = "arraybuffer";
  ws.onopen = function () { state.textContent = "Connected."; };
  ws.onmessage = function (e) {
    var text = typeof e.data === "string" ? e.data : decoder.decode(new Uint8Array(e.data), { stream: true });
    out.textContent = (out.textContent + text).slice(-20000);
    out.scrollTop = out.scrollHeight;
  };
  ws.onclose = function () {
    state.textContent = "The connection is closed (reload the page for a new console).";
  };
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var line = form.elements.line;
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(new TextEncoder().encode(line.value + "\r"));
      line.value = "";
    }
  });
}());
