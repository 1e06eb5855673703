import { api, query } from '../api.js'
import { buckets, Chart } from '../chart.js'
import { html, number, useEffect, useRef, useState, when } from '../lib.js'
import { Busy, Field, FormError, Loading, SecretOnce, useAction } from '../ui.js'

export const REVEAL_SECONDS = 30

/**
 * Reveals a stored secret: the passphrase is asked each time and cleared once sent; the plaintext
 * leaves the page's state (and so the page) after 30 seconds, or at once with Hide or Close.
 */
export function RevealForm ({ keyView, versions, onClose }) {
  const [passphrase, setPassphrase] = useState('')
  const [version, setVersion] = useState(String(keyView.version))
  const [shown, setShown] = useState(null)
  const [left, setLeft] = useState(0)
  const action = useAction(['passphrase', 'version'])
  useEffect(() => {
    if (shown === null) return undefined
    const started = Date.now()
    setLeft(REVEAL_SECONDS)
    const tick = setInterval(() => {
      const remaining = REVEAL_SECONDS - Math.floor((Date.now() - started) / 1000)
      if (remaining <= 0) setShown(null)
      else setLeft(remaining)
    }, 250)
    return () => clearInterval(tick)
  }, [shown])
  const submit = (e) => {
    e.preventDefault()
    const typed = passphrase
    setPassphrase('')
    action.run(async () => {
      const answer = await api('POST', `/api/keys/${keyView.id}/reveal`, { passphrase: typed, version: Number(version) })
      setShown({ version: answer.version, secret: answer.secret })
    })
  }
  const choices = versions.filter((v) => v.recoverable).map((v) => [String(v.version), `Version ${v.version}${v.current ? ' (current)' : ''}`])
  return html`<div>
    ${shown === null
      ? html`<form onSubmit=${submit} novalidate aria-label="Reveal secret">
        <p class="muted">The passphrase is asked each time. The secret is hidden again after ${REVEAL_SECONDS} seconds.</p>
        <${Field} label="Vault passphrase" name="passphrase" type="password" autocomplete="off" value=${passphrase} onInput=${setPassphrase} error=${action.fieldError('passphrase')} />
        ${choices.length > 1 && html`<${Field} label="Version" name="version" value=${version} options=${choices} onInput=${setVersion} error=${action.fieldError('version')} />`}
        <${FormError} text=${action.formError} />
        <div class="actions"><button type="button" class="btn" onClick=${onClose}>Close</button><${Busy} busy=${action.busy} label="Reveal" working="Decrypting…" /></div>
      </form>`
      : html`<div class="revealed">
        <p>Version ${shown.version}:</p>
        <code class="secret" data-testid="revealed">${shown.secret}</code>
        <p class="muted" role="timer" aria-live="off">Hidden in ${left} s</p>
        <div class="actions"><button type="button" class="btn" onClick=${() => setShown(null)}>Hide</button><button type="button" class="btn" onClick=${onClose}>Close</button></div>
      </div>`}
  </div>`
}

/** Rotates a key: issued keys get a new secret (shown once) and a grace period for the old one. */
export function RotateForm ({ keyView, onRotated, onCancel }) {
  const issued = keyView.kind === 'issued'
  const [form, setForm] = useState({ secret: '', passphrase: '', gracePeriodSeconds: '3600' })
  const [secret, setSecret] = useState(null)
  const action = useAction(['secret', 'passphrase', 'gracePeriodSeconds'])
  const set = (name) => (value) => setForm({ ...form, [name]: value })
  const needsPassphrase = !issued || keyView.recoverable
  const submit = (e) => {
    e.preventDefault()
    action.run(async () => {
      const body = {}
      if (issued) body.gracePeriodSeconds = /^\d+$/.test(form.gracePeriodSeconds) ? Number(form.gracePeriodSeconds) : form.gracePeriodSeconds
      else body.secret = form.secret
      if (needsPassphrase) body.passphrase = form.passphrase
      const answer = await api('POST', `/api/keys/${keyView.id}/rotate`, body)
      setForm({ secret: '', passphrase: '', gracePeriodSeconds: '3600' })
      if (answer.secret === undefined) onRotated(answer.key)
      else setSecret(answer)
    })
  }
  if (secret !== null) return html`<${SecretOnce} secret=${secret.secret} what="The new key" onDone=${() => onRotated(secret.key)} />`
  const graces = [['0', 'None: the old key stops at once'], ['3600', '1 hour'], ['86400', '24 hours'], ['604800', '7 days']]
  return html`<form onSubmit=${submit} novalidate aria-label="Rotate key">
    ${issued
      ? html`<${Field} label="The old key keeps working for" name="gracePeriodSeconds" value=${form.gracePeriodSeconds} options=${graces} onInput=${set('gracePeriodSeconds')} error=${action.fieldError('gracePeriodSeconds')} />`
      : html`<${Field} label="New secret (from the provider)" name="secret" type="password" autocomplete="off" value=${form.secret} onInput=${set('secret')} error=${action.fieldError('secret')} />`}
    ${needsPassphrase && html`<${Field} label="Vault passphrase" name="passphrase" type="password" autocomplete="off" value=${form.passphrase} onInput=${set('passphrase')} error=${action.fieldError('passphrase')} />`}
    <${FormError} text=${action.formError} />
    <div class="actions"><button type="button" class="btn" onClick=${onCancel}>Cancel</button><${Busy} busy=${action.busy} label="Rotate" working="Rotating…" /></div>
  </form>`
}

const RANGES = { hour: 'Last 24 hours, by hour', day: 'Last 30 days, by day', month: 'Last 12 months, by month' }

/** The key's usage over time; Refresh reads it again (counts arrive within the flush interval). */
export function UsagePanel ({ keyId }) {
  const [granularity, setGranularity] = useState('hour')
  const [series, setSeries] = useState(null)
  const [error, setError] = useState(null)
  const [busy, setBusy] = useState(false)
  const load = () => {
    setBusy(true)
    api('GET', `/api/keys/${keyId}/usage` + query({ granularity }))
      .then((s) => { setSeries(s); setError(null) }, setError)
      .finally(() => setBusy(false))
  }
  useEffect(load, [keyId, granularity])
  const chart = useRef(null)
  if (series !== null && (chart.current === null || chart.current.source !== series)) {
    const { x, y } = buckets(series, series.granularity, (p) => p.requests)
    chart.current = { source: series, x, series: [{ label: 'requests', values: y }] }
  }
  return html`<section class="card" aria-labelledby="usage-title">
    <div class="section-head">
      <h2 id="usage-title">Usage</h2>
      <div class="row">
        <label for="granularity" class="sr-only">Period</label>
        <select id="granularity" value=${granularity} onChange=${(e) => setGranularity(e.currentTarget.value)}>
          ${Object.entries(RANGES).map(([v, t]) => html`<option value=${v}>${t}</option>`)}
        </select>
        <${Busy} type="button" kind="" busy=${busy} label="Refresh" working="Loading…" onClick=${load} />
      </div>
    </div>
    <${FormError} text=${error?.text} />
    ${series === null
      ? html`<${Loading} what="Loading usage" />`
      : html`<p><span data-testid="usage-requests">${number(series.total.requests)}</span> requests, ${number(series.total.units)} units in this period.</p>
        <${Chart} label=${`Requests of this key, ${RANGES[granularity].toLowerCase()}`} x=${chart.current.x} series=${chart.current.series} />`}
  </section>`
}

export function VersionsPanel ({ versions }) {
  return html`<section class="card" aria-labelledby="versions-title">
    <h2 id="versions-title">Versions</h2>
    <div class="table-wrap"><table>
      <thead><tr><th scope="col">Version</th><th scope="col">Starts with</th><th scope="col">Created</th><th scope="col">Retired</th><th scope="col">Old key works until</th><th scope="col">Revealable</th></tr></thead>
      <tbody>${versions.map((v) => html`<tr key=${v.version}>
        <td>${v.version}${v.current ? ' (current)' : ''}</td><td><code>${v.start}…</code></td><td>${when(v.createdAt)}</td>
        <td>${when(v.retiredAt)}</td><td>${when(v.graceEndsAt)}</td><td>${v.recoverable ? 'yes' : 'no'}</td>
      </tr>`)}</tbody>
    </table></div>
  </section>`
}

export function KeyAudit ({ keyId, version }) {
  const [events, setEvents] = useState(null)
  const [error, setError] = useState(null)
  useEffect(() => { api('GET', '/api/audit' + query({ keyId, limit: 10 })).then((p) => setEvents(p.items), setError) }, [keyId, version])
  return html`<section class="card" aria-labelledby="key-audit-title">
    <h2 id="key-audit-title">Recent events</h2>
    <${FormError} text=${error?.text} />
    ${events === null
      ? html`<${Loading} what="Loading events" />`
      : html`<ul class="events">${events.map((e) => html`<li key=${e.id}><span class="action">${e.action}</span> <span class="muted">${when(e.createdAt)}${e.ip ? ' · ' + e.ip : ''}</span></li>`)}</ul>`}
  </section>`
}
