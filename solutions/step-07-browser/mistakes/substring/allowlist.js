// Which cross-origin URLs get the page's `traceparent`. Same-origin calls
// always do; everything else gets it only if it matches this list. The page
// (`frontend/src/main.js`) is bundled with this file by the check.

// A wrong fix: the origin escaped but not anchored, a substring match: any
// URL that holds it (in its query, or with more digits on its port) matches.
export function propagationAllowlist(origins) {
  return origins.map((origin) => new RegExp(escapeRegExp(new URL(origin).origin)));
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
