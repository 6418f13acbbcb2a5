"""The browser console: static pages served by the server itself (no CDN, no build step)."""
