// The benchmark receiver: a callback-protocol endpoint that answers as fast as it can.
//
//   node benchmarks/receiver/receiver.js PORT
//
//   GET /multiply?x=X&y=Y  -> {"status":"success","retval":X*Y}
//   GET /health            -> {"status":"success","retval":"ok"}
//   GET /stats             -> {"status":"success","retval":{"requests":N}}
//
// Why Node's http module: it runs in its own process (its CPU shows up apart from the
// systems measured), needs no dependency, keeps connections alive indefinitely, and its
// HTTP parser (llhttp, in C) costs a few tens of microseconds per request -- so at the
// 2,000 requests/s the fastest Python client can drive, the receiver uses a few percent of
// one core and is never the bottleneck.  The query is parsed by hand (no URL object) and
// the headers are a fixed array, which halves the per-request cost of the generic path.
"use strict";
const http = require("http");

const port = Number(process.argv[2] || 8790);
let requests = 0;

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
    return send(res, 200, { status: "success", retval: Number(param(query, "x")) * Number(param(query, "y")) });
  }
  if (path === "/health") return send(res, 200, { status: "success", retval: "ok" });
  if (path === "/stats") return send(res, 200, { status: "success", retval: { requests } });
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
