import { api, query } from '../api.js'
import { buckets, Chart } from '../chart.js'
import { html, number, useEffect, useState } from '../lib.js'
import { FormError, Loading } from '../ui.js'

/** Month to date: totals, by key, by service, the top keys, and their daily units in a chart. */
export function UsagePage () {
  const [summary, setSummary] = useState(null)
  const [daily, setDaily] = useState(null)
  const [error, setError] = useState(null)
  useEffect(() => {
    api('GET', '/api/usage/summary').then(async (s) => {
      setSummary(s)
      const top = s.topKeys.slice(0, 5)
      const from = s.month
      const lines = await Promise.all(top.map((k) => api('GET', `/api/keys/${k.keyId}/usage` + query({ granularity: 'day', from }))))
      const filled = lines.map((line) => buckets(line, 'day', (p) => p.units))
      setDaily({ x: filled[0]?.x ?? [], series: filled.map((line, i) => ({ label: top[i].name, values: line.y })) })
    }).catch(setError)
  }, [])
  if (error !== null) return html`<main id="main" tabindex="-1"><h1>Usage</h1><${FormError} text=${error.text} /></main>`
  if (summary === null) return html`<main id="main" tabindex="-1"><h1>Usage</h1><${Loading} what="Loading usage" /></main>`
  const month = new Date(summary.month).toLocaleDateString(undefined, { month: 'long', year: 'numeric', timeZone: 'UTC' })
  const top = summary.topKeys[0]?.units ?? 0
  return html`<main id="main" tabindex="-1">
    <h1>Usage <span class="muted">${month}, to date (UTC)</span></h1>
    <ul class="tiles" aria-label="Totals">
      <li class="tile"><span class="label">Requests</span><span class="value" data-testid="total-requests">${number(summary.total.requests)}</span></li>
      <li class="tile"><span class="label">Units</span><span class="value">${number(summary.total.units)}</span></li>
      <li class="tile"><span class="label">Keys used</span><span class="value">${number(summary.byKey.filter((k) => k.requests > 0).length)}</span></li>
    </ul>
    <section class="card" aria-labelledby="top-title">
      <h2 id="top-title">Top keys</h2>
      ${summary.topKeys.length === 0
        ? html`<p class="muted">No usage this month yet.</p>`
        : html`<ol class="bars">${summary.topKeys.map((k) => html`<li key=${k.keyId}>
          <a href=${'/console/keys/' + k.keyId}>${k.name}</a>
          <span class="bar" aria-hidden="true"><span style=${{ width: (top === 0 ? 0 : Math.max(1, (k.units / top) * 100)) + '%' }}></span></span>
          <span class="num">${number(k.units)} units</span></li>`)}</ol>`}
      ${daily !== null && daily.series.length > 0 && html`<${Chart} label="Daily units of the top keys this month" x=${daily.x} series=${daily.series} />`}
    </section>
    <div class="two">
      <section class="card" aria-labelledby="bykey-title">
        <h2 id="bykey-title">By key</h2>
        <div class="table-wrap"><table>
          <thead><tr><th scope="col">Key</th><th scope="col">Service</th><th scope="col" class="num">Requests</th><th scope="col" class="num">Units</th><th scope="col" class="num">Monthly limit</th></tr></thead>
          <tbody>${summary.byKey.map((k) => html`<tr key=${k.keyId}><td><a href=${'/console/keys/' + k.keyId}>${k.name}</a></td><td>${k.service ?? '–'}</td>
            <td class="num">${number(k.requests)}</td><td class="num">${number(k.units)}</td><td class="num">${k.monthlyLimit === null ? '–' : number(k.monthlyLimit)}</td></tr>`)}</tbody>
        </table></div>
      </section>
      <section class="card" aria-labelledby="byservice-title">
        <h2 id="byservice-title">By service</h2>
        <div class="table-wrap"><table>
          <thead><tr><th scope="col">Service</th><th scope="col" class="num">Requests</th><th scope="col" class="num">Units</th></tr></thead>
          <tbody>${Object.entries(summary.byService).map(([name, row]) => html`<tr key=${name}><td>${name}</td><td class="num">${number(row.requests)}</td><td class="num">${number(row.units)}</td></tr>`)}</tbody>
        </table></div>
      </section>
    </div>
  </main>`
}
