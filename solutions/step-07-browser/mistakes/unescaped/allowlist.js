// Which cross-origin URLs get the page's `traceparent`. Same-origin calls
// always do; everything else gets it only if it matches this list. The page
// (`frontend/src/main.js`) is bundled with this file by the check.

// A wrong fix: anchored on the whole origin and the slash after it, but the
// origin is not escaped, so each `.` in its host matches any character.
export function propagationAllowlist(origins) {
  return origins.map((origin) => {
    const exact = new URL(origin).origin;
    return new RegExp('^' + exact + '/');
  });
}
