// A receiver in plain Node.js (18+), no dependencies.
//
//     node examples/receivers/node_receiver.js [PORT]        (default 8000)
//
// It takes every shape of call a worker sends: GET with the arguments in the query
// string; POST, PUT, PATCH and DELETE with them in the body, form-encoded or JSON
// (JSON values keep their types; form and query values are strings).
//
// /multiply?x=6&y=7   ->  {"status": "success", "retval": 42}
// /divide?x=1&y=0     ->  {"status": "failure", "reason": "division by zero"}
// /multiply?x=6       ->  {"status": "failure", "reason": "missing argument: y"}
// /multiply?x=six&y=7 ->  {"status": "failure", "reason": "x must be an integer, not \"six\""}
// /echo?a=1&a=2&b=3   ->  {"status": "success", "retval": {"a": ["1", "2"], "b": "3"}}
//
// With DISPATCH_SIGNING_SECRET=whsec_... in the environment, every call must carry a
// valid Standard Webhooks signature (docs/protocol.md, "Signatures on the wire"): of the
// query string for GET, of the body for the other methods.  Unsigned calls get HTTP 401.
// node_standardwebhooks.js is this receiver with the standardwebhooks package checking
// signatures instead of verify() below; it reuses createReceiver() from this file.

"use strict";

const crypto = require("node:crypto");
const http = require("node:http");

const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE"]);
const FORM = "application/x-www-form-urlencoded";
const JSON_TYPE = "application/json";
const MAX_BODY_BYTES = 1024 * 1024;
const TOLERANCE_SECONDS = 300;

// A request the protocol does not allow: answered with this HTTP status and a failure body.
class Refused extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

// An integer argument: a JSON integer, or a string of digits (a form or query value).
function integer(args, name) {
  if (!Object.hasOwn(args, name)) throw new Error(`missing argument: ${name}`);
  const value = args[name];
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  if (typeof value === "string" && /^\s*[+-]?\d+\s*$/.test(value) && Number.isSafeInteger(Number(value))) {
    return Number(value);
  }
  throw new Error(`${name} must be an integer, not ${JSON.stringify(value)}`);
}

const TASKS = {
  "/multiply": (args) => integer(args, "x") * integer(args, "y"),
  "/divide": (args) => {
    const x = integer(args, "x");
    const y = integer(args, "y");
    if (y === 0) throw new Error("division by zero");
    return x / y;
  },
  "/echo": (args) => args,
};

// Form-encoded arguments: one value -> a string, a repeated key -> an array.
// A prototype-less object, so a key such as "__proto__" or "toString" is just a key.
function formArgs(encoded) {
  const args = Object.create(null);
  for (const [key, value] of new URLSearchParams(encoded)) {
    if (!(key in args)) args[key] = value;
    else if (Array.isArray(args[key])) args[key].push(value);
    else args[key] = [args[key], value];
  }
  return args;
}

// GET: the query string.  Other methods: the body only, as that is what a signature covers.
function readArgs(method, contentType, query, body) {
  if (method === "GET") return formArgs(query);
  const type = (contentType || "").split(";")[0].trim().toLowerCase();
  if (type === JSON_TYPE) {
    let args;
    try {
      args = JSON.parse(body.toString("utf8"));
    } catch (err) {
      throw new Refused(400, `the body is not JSON: ${err.message}`);
    }
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      throw new Refused(400, "the JSON body must be an object of arguments");
    }
    return args;
  }
  if (type === "" || type === FORM) return formArgs(body.toString("utf8"));
  throw new Refused(415, `the body must be ${FORM} or ${JSON_TYPE}, not ${type}`);
}

// Throws unless the request is signed with `secret` (https://www.standardwebhooks.com/).
function verify(secret, payload, headers) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) throw new Error("unsigned request: missing webhook-* headers");
  if (!/^\d+$/.test(timestamp)) throw new Error("webhook-timestamp is not an integer");
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw new Error("webhook-timestamp is too far from now (a replay?)");
  }
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
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
  res.writeHead(code, { "Content-Type": JSON_TYPE, "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

// An http.Server answering the callback protocol.  `check(payload, headers)` throws on a bad
// signature (null: calls are not signed); the payload is the exact bytes a signature covers.
function createReceiver(check) {
  return http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        answer(res, 413, { status: "failure", reason: `the body is larger than ${MAX_BODY_BYTES} bytes` });
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const mark = req.url.indexOf("?");
      const path = mark < 0 ? req.url : req.url.slice(0, mark);
      const query = mark < 0 ? "" : req.url.slice(mark + 1);
      if (path === "/health") return answer(res, 200, { status: "success", retval: "ok" });
      let args;
      try {
        if (check) {
          try {
            check(req.method === "GET" ? Buffer.from(query) : body, req.headers);
          } catch (err) {
            throw new Refused(401, `signature check failed: ${err.message}`);
          }
        }
        if (!Object.hasOwn(TASKS, path)) throw new Refused(404, `no function at ${path}`);
        if (!METHODS.has(req.method)) throw new Refused(405, `method ${req.method} is not allowed`);
        args = readArgs(req.method, req.headers["content-type"], query, body);
      } catch (err) {
        return answer(res, err.status, { status: "failure", reason: err.message });
      }
      try {
        answer(res, 200, { status: "success", retval: TASKS[path](args) });
      } catch (err) {
        answer(res, 200, { status: "failure", reason: err.message });
      }
    });
  });
}

function listen(server) {
  const port = Number(process.argv[2] || 8000);
  server.listen(port, "127.0.0.1", () => console.log(`receiver listening on http://127.0.0.1:${port}`));
}

module.exports = { createReceiver, listen };

if (require.main === module) {
  const secret = process.env.DISPATCH_SIGNING_SECRET || "";
  listen(createReceiver(secret ? (payload, headers) => verify(secret, payload, headers) : null));
}
