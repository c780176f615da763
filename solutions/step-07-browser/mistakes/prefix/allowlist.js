// Which cross-origin URLs get the page's `traceparent`. Same-origin calls
// always do; everything else gets it only if it matches this list. The page
// (`frontend/src/main.js`) is bundled with this file by the check.

// A wrong fix: escaped and anchored at the start, but not at the origin's
// end: `http://api:9001` also matches `http://api:90011`.
export function propagationAllowlist(origins) {
  return origins.map((origin) => new RegExp('^' + escapeRegExp(new URL(origin).origin)));
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
