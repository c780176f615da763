// Which cross-origin URLs get the page's `traceparent`. Same-origin calls
// always do; everything else gets it only if it matches this list. The page
// (`frontend/src/main.js`) is bundled with this file by the check.

// ANCHOR: allowlist
/** Anchored RegExps, one per allowed API origin: `^scheme://host:port/`. */
export function propagationAllowlist(origins) {
  return origins.map((origin) => {
    // `new URL(...).origin` normalises (default ports, case); the trailing
    // slash stops `http://api:9001` from also matching `http://api:90011`
    // or `http://api:9001.evil.example`.
    const exact = new URL(origin).origin;
    return new RegExp('^' + escapeRegExp(exact) + '/');
  });
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
// ANCHOR_END: allowlist
