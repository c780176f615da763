// The propagation allowlist in seconds, under Node's own test runner
// (`cargo test -p step-07-browser` runs it; so does `node --test tests/`):
// the crate's `allowlist.js` with the partner's origin, and the URLs the
// check's page calls, matched as OpenTelemetry JS matches them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

// Loaded from its source, as an ES module whatever Node 20 release runs it
// (releases before 20.19 read a `.js` file outside a `"type": "module"`
// package as CommonJS).
const source = await readFile(new URL('../allowlist.js', import.meta.url), 'utf8');
const { propagationAllowlist } = await import(
  'data:text/javascript;base64,' + Buffer.from(source).toString('base64')
);

const CHAPTER =
  'read the exercise in book/src/step-07-browser.md, or take a hint: cargo xtask hint step-7';

// `urlMatches` of @opentelemetry/sdk-trace-web (2.x), which the fetch
// instrumentation applies to each entry of `propagateTraceHeaderCorsUrls`:
// a string must equal the whole URL, a RegExp is tested against it.
function urlMatches(url, entry) {
  return typeof entry === 'string' ? url === entry : Boolean(url.match(entry));
}

const PARTNER = 'http://api.partner.localhost:1901';
const OTHER = 'http://127.0.0.1:9002';
const entries = propagationAllowlist([PARTNER, OTHER]);

/** Whether the page sends its `traceparent` with a call to `url`. */
function propagates(url) {
  return entries.some((entry) => urlMatches(url, entry));
}

test('every call to an allowed origin carries the traceparent', () => {
  for (const url of [`${PARTNER}/api`, `${PARTNER}/api?order=7`, `${PARTNER}/`, `${OTHER}/v1/quote`]) {
    assert.ok(
      propagates(url),
      `a call to ${url} gets no traceparent, although its origin is on the list: ` +
        `OTel-JS compares a string entry with the whole URL, never with its origin\n  ${CHAPTER}`,
    );
  }
});

// Each look-alike the check's page calls too, and the mistake that lets it match.
const LOOK_ALIKES = [
  [`http://api.partner.localhost:19013/api`, "the allowlist pattern is unanchored (it matches past the origin's end)"],
  [`http://api.partner.localhost:1901.evil.example/api`, "the allowlist pattern is unanchored (it matches past the origin's end)"],
  [`http://api-partner.localhost:1901/api`, 'its `.` is unescaped (a `.` in a RegExp matches any character)'],
  [`http://127.0.0.1:20500/api?from=${PARTNER}`, 'a substring match (the pattern is not anchored at the URL\'s start)'],
];

for (const [url, mistake] of LOOK_ALIKES) {
  test(`no traceparent to the look-alike ${url}`, () => {
    assert.ok(!propagates(url), `the page would send its traceparent to ${url}: ${mistake}\n  ${CHAPTER}`);
  });
}

test('no traceparent to an origin that is not on the list', () => {
  for (const url of ['http://127.0.0.1:9003/api', 'https://api.partner.localhost:1901/api']) {
    assert.ok(!propagates(url), `the page would send its traceparent to ${url}, which is not on the list\n  ${CHAPTER}`);
  }
});
