import { html, useEffect, useRef } from './lib.js'

const COLORS = ['#2456c7', '#b3261e', '#1b7f4b', '#8a4b00', '#6a3fb5']

/**
 * A uPlot line chart of [times in seconds, ...series]. Its width follows the card it sits in; a
 * table of the same figures beside it is what screen readers use.
 */
export function Chart ({ label, x, series, height = 220 }) {
  const box = useRef(null)
  useEffect(() => {
    const el = box.current
    const width = () => Math.max(260, el.clientWidth)
    const UPlot = window.uPlot
    const plot = new UPlot({
      width: width(),
      height,
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, fill: i === 0 && series.length === 1 ? 'rgba(36,86,199,0.12)' : undefined }))],
      axes: [{}, { size: 56 }],
      legend: { live: false }
    }, [x, ...series.map((s) => s.values)], el)
    const resize = () => plot.setSize({ width: width(), height })
    window.addEventListener('resize', resize)
    return () => { window.removeEventListener('resize', resize); plot.destroy() }
  }, [x, series])
  return html`<div class="chart" ref=${box} role="img" aria-label=${label} data-points=${x.length}></div>`
}

/** Every bucket from `from` to `to` (the API lists only buckets with usage), as [seconds], [values]. */
export function buckets (series, granularity, value) {
  const byStart = new Map(series.points.map((p) => [Date.parse(p.start), value(p)]))
  const x = []
  const y = []
  const at = new Date(series.from)
  if (granularity === 'month') at.setUTCDate(1)
  if (granularity !== 'hour') at.setUTCHours(0, 0, 0, 0)
  else at.setUTCMinutes(0, 0, 0)
  const end = Date.parse(series.to)
  while (at.getTime() <= end) {
    x.push(at.getTime() / 1000)
    y.push(byStart.get(at.getTime()) ?? 0)
    if (granularity === 'hour') at.setUTCHours(at.getUTCHours() + 1)
    else if (granularity === 'day') at.setUTCDate(at.getUTCDate() + 1)
    else at.setUTCMonth(at.getUTCMonth() + 1)
  }
  return { x, y }
}
