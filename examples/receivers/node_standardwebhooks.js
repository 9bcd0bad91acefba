// A receiver that checks signed calls with the `standardwebhooks` npm package.
//
//     cd examples/receivers && npm ci
//     DISPATCH_SIGNING_SECRET=whsec_... node node_standardwebhooks.js [PORT]    (default 8000)
//
// The routes and arguments are node_receiver.js's (createReceiver); only the signature
// check differs.  Two things the library needs to verify dispatch's calls:
//
// - the payload is what dispatch signs: the raw query string (after the "?") for GET, the
//   raw body for the other methods -- bytes as received, before any parsing;
// - { jsonParse: false }: after a valid signature, verify() JSON-parses the payload by
//   default and throws a SyntaxError on a form body or a query string ("x=6&y=7").

"use strict";

const { Webhook } = require("standardwebhooks");
const { createReceiver, listen } = require("./node_receiver.js");

const secret = process.env.DISPATCH_SIGNING_SECRET;
if (!secret) {
  console.error("set DISPATCH_SIGNING_SECRET to the workers' secret (whsec_...)");
  process.exit(2);
}
const webhook = new Webhook(secret);

listen(createReceiver((payload, headers) => webhook.verify(payload, headers, { jsonParse: false })));
