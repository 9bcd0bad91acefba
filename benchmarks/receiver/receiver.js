// The benchmark receiver: a callback-protocol endpoint that answers as fast as it can.
//
//   node benchmarks/receiver/receiver.js PORT
//
//   GET /multiply?x=X&y=Y  -> {"status":"success","retval":X*Y}
//   GET /multiply?x=X&y=Y&delay_ms=D -> the same answer D ms later (a slow endpoint; a timer, nothing blocks)
//   GET /health            -> {"status":"success","retval":"ok"}
//   GET /stats             -> {"status":"success","retval":{"requests":N}}
//
// This is the fallback receiver (`bench.py --receiver node`), used when no C compiler is
// around: Node's http module with keep-alive, no dependencies, the query parsed by hand and
// fixed header arrays.  It is fast, but measured on the 2-core bench machine it spends
// 60-190 us of CPU per request against 10-30 us for receiver.c (an epoll loop in C), and the
// urllib3 loop ran 2,500-3,700 calls/s against it vs 4,600-7,400 against receiver.c -- on a
// machine where every process shares two cores, the receiver's CPU is taken from the systems
// being measured, so the default is the C one.
"use strict";
const http = require("http");

const port = Number(process.argv[2] || 8790);
let requests = 0;
let pending = 0;
let peakPending = 0;

function param(query, name) {
  // query is "x=1&y=2" (no leading '?'); numbers only, so no percent-decoding is needed.
  let start = 0;
  while (start < query.length) {
    let end = query.indexOf("&", start);
    if (end === -1) end = query.length;
    const eq = query.indexOf("=", start);
    if (eq !== -1 && eq < end && query.slice(start, eq) === name) return query.slice(eq + 1, end);
    start = end + 1;
  }
  return undefined;
}

function send(res, code, payload) {
  const body = JSON.stringify(payload);
  res.writeHead(code, ["Content-Type", "application/json", "Content-Length", String(Buffer.byteLength(body))]);
  res.end(body);
}

const server = http.createServer((req, res) => {
  requests++;
  const url = req.url;
  const q = url.indexOf("?");
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? "" : url.slice(q + 1);
  // Drain any body (POST form) before answering; GETs have none and 'end' fires at once.
  req.resume();
  if (path === "/multiply") {
    const answer = { status: "success", retval: Number(param(query, "x")) * Number(param(query, "y")) };
    const delay = Number(param(query, "delay_ms") || 0);
    if (delay > 0) {
      peakPending = Math.max(peakPending, ++pending);
      return setTimeout(() => {
        pending--;
        send(res, 200, answer);
      }, delay);
    }
    return send(res, 200, answer);
  }
  if (path === "/health") return send(res, 200, { status: "success", retval: "ok" });
  if (path === "/stats") {
    send(res, 200, { status: "success", retval: { requests, pending, peak_pending: peakPending } });
    if (param(query, "reset")) peakPending = pending;
    return;
  }
  return send(res, 404, { status: "failure", reason: "no such route" });
});

server.keepAliveTimeout = 0; // never close an idle keep-alive connection
server.headersTimeout = 0;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`receiver listening on 127.0.0.1:${port}\n`);
});

for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)) && setTimeout(() => process.exit(0), 200).unref());
