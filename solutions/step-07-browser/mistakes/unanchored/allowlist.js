// Which cross-origin URLs get the page's `traceparent`. Same-origin calls
// always do; everything else gets it only if it matches this list. The page
// (`frontend/src/main.js`) is bundled with this file by the check.

// A wrong fix: each origin turned into a RegExp as it is. Unanchored, it
// matches anywhere in a URL and past the origin's end; unescaped, each `.`
// in it matches any character.
export function propagationAllowlist(origins) {
  return origins.map((origin) => new RegExp(origin));
}
