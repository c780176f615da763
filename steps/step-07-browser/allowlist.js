// Which cross-origin URLs get the page's `traceparent`. Same-origin calls
// always do; everything else gets it only if it matches this list. The page
// (`frontend/src/main.js`) is bundled with this file by the check.

/**
 * `FetchInstrumentation`'s `propagateTraceHeaderCorsUrls`, from the origins
 * the server allows (`config.propagate_to`, e.g. `http://127.0.0.1:9001`).
 */
export function propagationAllowlist(origins) {
  // TODO(step-7): the partner API is on the list, and yet every call reaches
  // it without the page's traceparent, so the partner starts a trace of its
  // own: OTel-JS does not read an entry of this list the way the list
  // assumes. Afterwards, every call to an origin in `origins` carries the
  // page's traceparent, and no other call does: not a third party, not an
  // origin that only begins like an allowed one (`http://127.0.0.1:90011`).
  return origins;
}
