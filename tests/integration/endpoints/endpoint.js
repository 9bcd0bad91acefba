// A callback-protocol endpoint in Node.js (no dependencies), run as its own process:
//   node tests/integration/endpoints/endpoint.js PORT
// Same routes as endpoint.py; see there.  Any request carrying ?key=K counts a hit for K.
"use strict";
const http = require("http");

const hits = new Map();
const inFlight = new Map(); // key -> calls being answered now (route "hold")
const peak = new Map(); // key -> most calls in flight at once
const perSecond = new Map(); // key -> Map(second -> calls that arrived in it)

function single(params) {
  const out = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    out[key] = values.length === 1 ? values[0] : values;
  }
  return out;
}

function answer(res, code, payload, { raw, chunked, retryAfter } = {}) {
  const body = raw !== undefined ? Buffer.from(raw) : Buffer.from(JSON.stringify(payload));
  const headers = { "Content-Type": "application/json" };
  if (retryAfter !== undefined) headers["Retry-After"] = retryAfter;
  if (!chunked) headers["Content-Length"] = body.length;
  res.writeHead(code, headers);
  res.end(body);
}

const success = (res, retval, opts) => answer(res, 200, { status: "success", retval }, opts);

const server = http.createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const url = new URL(req.url, "http://localhost");
    const query = single(url.searchParams);
    const isJson = (req.headers["content-type"] ?? "").startsWith("application/json");
    const json = isJson && body ? JSON.parse(body) : undefined;
    const form = isJson ? {} : single(new URLSearchParams(body));
    const args = { ...query, ...form, ...(json ?? {}) };
    const path = url.pathname.replace(/^\/+|\/+$/g, "").split("/");
    const name = path[0];
    if (args.key !== undefined) hits.set(args.key, (hits.get(args.key) ?? 0) + 1);

    switch (name) {
      case "multiply":
        return success(res, Number(args.x) * Number(args.y));
      case "fail":
        return answer(res, 200, { status: "failure", reason: args.reason ?? "it broke" });
      case "empty":
        return answer(res, 200, null, { raw: "" });
      case "notjson":
        return answer(res, 200, null, { raw: "<html>not json</html>" });
      case "array":
        return answer(res, 200, [1, 2, 3]);
      case "unknown":
        return answer(res, 200, { status: "maybe", retval: 1 });
      case "status":
        return answer(res, Number(path[1]), { status: "failure", reason: "status " + path[1] }, { retryAfter: args.retry_after });
      case "echo":
        return success(res, { method: req.method, path: url.pathname, query, form, json, raw_body: body, headers: req.headers });
      case "flaky": {
        const n = hits.get(args.key);
        if (n <= Number(args.fail ?? 0)) {
          return answer(res, Number(args.code ?? 503), { status: "failure", reason: "busy" }, { retryAfter: args.retry_after });
        }
        return success(res, n);
      }
      case "hold": {
        // answers after ?ms= milliseconds, counting how many calls for ?key= it holds at once
        const seconds = perSecond.get(args.key) ?? new Map();
        const second = Math.floor(Date.now() / 1000);
        seconds.set(second, (seconds.get(second) ?? 0) + 1);
        perSecond.set(args.key, seconds);
        const now = (inFlight.get(args.key) ?? 0) + 1;
        inFlight.set(args.key, now);
        peak.set(args.key, Math.max(peak.get(args.key) ?? 0, now));
        return setTimeout(() => {
          inFlight.set(args.key, inFlight.get(args.key) - 1);
          success(res, now);
        }, Number(args.ms ?? 100));
      }
      case "peak":
        return success(res, peak.get(path[1]) ?? 0);
      case "busiest_second":
        return success(res, Math.max(0, ...(perSecond.get(path[1]) ?? new Map()).values()));
      case "hits":
        return success(res, hits.get(path[1]) ?? 0);
      case "slow":
        return setTimeout(() => success(res, "slow"), Number(args.ms ?? 1000));
      case "big":
        return success(res, "x".repeat(Number(args.bytes)), { chunked: Boolean(args.chunked) });
      case "reset":
        return req.socket.resetAndDestroy();
      case "health":
        return success(res, "ok");
      default:
        return answer(res, 404, { status: "failure", reason: "no such route" });
    }
  });
});

server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2]), "127.0.0.1");
