// Preact 10, its hooks and htm arrive as UMD globals from /console/vendor/ (decision 013): no
// bundler and no import map, which the CSP would have to allow as an inline script.
const { preact, preactHooks, htm } = window

export const { h, render } = preact
export const { useState, useEffect, useRef, useCallback, useMemo } = preactHooks
export const html = htm.bind(h)

/** 2026-05-01T10:00:00.000Z as the reader's local date and time, or a dash. */
export function when (iso) {
  return iso === null || iso === undefined ? '–' : new Date(iso).toLocaleString()
}

export function number (n) {
  return n === null || n === undefined ? '–' : Number(n).toLocaleString()
}

/** Comma- or space-separated words as an array, empty ones dropped. */
export function words (text) {
  return text.split(/[\s,]+/).filter((w) => w.length > 0)
}
