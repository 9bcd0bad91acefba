// A receiver in plain Node.js, no dependencies.
//
//     node examples/receivers/node_receiver.js [PORT]        (default 8000)
//
// GET or POST /multiply?x=6&y=7   ->  {"status": "success", "retval": 42}
// GET or POST /divide?x=1&y=0     ->  {"status": "failure", "reason": "division by zero"}
// GET or POST /echo?any=thing     ->  {"status": "success", "retval": {"any": "thing"}}
//
// With DISPATCH_SIGNING_SECRET=whsec_... in the environment, every call must
// carry a valid Standard Webhooks signature (README.md, "Signed calls"): of the query
// string for GET, of the body for POST.  Unsigned calls get HTTP 401.

"use strict";

const crypto = require("node:crypto");
const http = require("node:http");

const TASKS = {
  "/multiply": ({ x, y }) => Number.parseInt(x, 10) * Number.parseInt(y, 10),
  "/divide": ({ x, y }) => {
    if (Number.parseInt(y, 10) === 0) throw new Error("division by zero");
    return Number.parseInt(x, 10) / Number.parseInt(y, 10);
  },
  "/echo": (args) => args,
};

const SECRET = process.env.DISPATCH_SIGNING_SECRET || "";
const TOLERANCE_SECONDS = 300;

// Form-encoded arguments: one value -> a string, a repeated key -> an array.
function parseArgs(encoded) {
  const args = {};
  for (const [key, value] of new URLSearchParams(encoded)) {
    if (!(key in args)) args[key] = value;
    else if (Array.isArray(args[key])) args[key].push(value);
    else args[key] = [args[key], value];
  }
  return args;
}

// Throws unless the request is signed with SECRET (https://www.standardwebhooks.com/).
function verify(headers, payload) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) throw new Error("unsigned request: missing webhook-* headers");
  if (!/^\d+$/.test(timestamp)) throw new Error("webhook-timestamp is not an integer");
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw new Error("webhook-timestamp is too far from now (a replay?)");
  }
  const key = Buffer.from(SECRET.replace(/^whsec_/, ""), "base64");
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), payload]);
  const expected = crypto.createHmac("sha256", key).update(signed).digest();
  for (const item of signatures.split(" ")) {
    const [version, encoded] = item.split(",");
    const candidate = Buffer.from(encoded || "", "base64");
    if (version === "v1" && candidate.length === expected.length && crypto.timingSafeEqual(candidate, expected)) {
      return;
    }
  }
  throw new Error("no signature matches");
}

function answer(res, code, payload) {
  const body = JSON.stringify(payload);
  res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const mark = req.url.indexOf("?");
    const path = mark < 0 ? req.url : req.url.slice(0, mark);
    const query = mark < 0 ? "" : req.url.slice(mark + 1);
    if (path === "/health") return answer(res, 200, { status: "success", retval: "ok" });

    if (SECRET) {
      // What is signed: the exact query string for GET, the exact body for POST.
      const payload = req.method === "GET" ? Buffer.from(query) : body;
      try {
        verify(req.headers, payload);
      } catch (err) {
        return answer(res, 401, { status: "failure", reason: `signature check failed: ${err.message}` });
      }
    }

    const task = TASKS[path];
    if (!task) return answer(res, 404, { status: "failure", reason: `no function at ${path}` });
    try {
      const args = parseArgs(req.method === "POST" ? body.toString("utf8") : query);
      answer(res, 200, { status: "success", retval: task(args) });
    } catch (err) {
      answer(res, 200, { status: "failure", reason: err.message });
    }
  });
});

const port = Number(process.argv[2] || 8000);
server.listen(port, "127.0.0.1", () => console.log(`receiver listening on http://127.0.0.1:${port}`));
