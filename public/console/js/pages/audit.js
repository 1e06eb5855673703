import { api } from '../api.js'
import { html, useEffect, useState, when } from '../lib.js'
import { Busy, FormError, Loading, Pager, useFilteredList } from '../ui.js'

const ACTIONS = ['', 'auth.register', 'auth.login', 'auth.login_failed', 'auth.logout', 'auth.logout_all', 'auth.password_changed', 'auth.session_revoked', 'auth.other_sessions_revoked', 'auth.refresh_reused', 'key.created', 'key.updated', 'key.rotated', 'key.revealed', 'key.revoked', 'key.expired', 'vault.passphrase_set', 'vault.passphrase_changed']

/** The hash chain's state as a badge: checked on load and on demand. */
function ChainBadge () {
  const [report, setReport] = useState(null)
  const [error, setError] = useState(null)
  const [busy, setBusy] = useState(false)
  const check = () => {
    setBusy(true)
    api('GET', '/api/audit/verify').then((r) => { setReport(r); setError(null) }, setError).finally(() => setBusy(false))
  }
  useEffect(check, [])
  return html`<div class="chain" role="status">
    ${report !== null && (report.valid
      ? html`<span class="badge valid" data-testid="chain">Chain valid</span> <span class="muted">${report.events} events checked</span>`
      : html`<span class="badge invalid" data-testid="chain">Chain broken</span> <span>at event ${report.brokenAt?.seq}: ${report.brokenAt?.reason}</span>`)}
    <${Busy} type="button" kind="" busy=${busy} label="Check again" working="Checking…" onClick=${check} />
    <${FormError} text=${error?.text} />
  </div>`
}

export function AuditPage () {
  const { filters, setFilters, list, error, pager } = useFilteredList('/api/audit', { action: '', keyId: '' }, 25)
  return html`<main id="main" tabindex="-1">
    <div class="page-head"><h1>Audit trail</h1><${ChainBadge} /></div>
    <p class="muted">Every change to your account and keys, newest first. Each event is linked to the one before by a hash, so an edited or removed event breaks the chain.</p>
    <form class="filters card" role="search" aria-label="Filter events" onSubmit=${(e) => e.preventDefault()}>
      <div class="field"><label for="audit-action">Action</label>
        <select id="audit-action" value=${filters.action} onChange=${(e) => setFilters({ ...filters, action: e.currentTarget.value })}>
          ${ACTIONS.map((a) => html`<option value=${a}>${a === '' ? 'Any action' : a}</option>`)}
        </select></div>
      <div class="field"><label for="audit-key">Key id</label>
        <input id="audit-key" value=${filters.keyId} onInput=${(e) => setFilters({ ...filters, keyId: e.currentTarget.value })} /></div>
    </form>
    <${FormError} text=${error?.text} />
    ${list === null
      ? html`<${Loading} what="Loading events" />`
      : html`<div class="table-wrap"><table class="audit">
        <thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Action</th><th scope="col">Key</th><th scope="col">Address</th><th scope="col">Detail</th></tr></thead>
        <tbody>${list.items.map((e) => html`<tr key=${e.id}>
          <td>${e.seq}</td><td>${when(e.createdAt)}</td><td>${e.action}</td>
          <td>${e.keyId === null ? '–' : html`<a href=${'/console/keys/' + e.keyId}>${e.keyId.slice(0, 10)}…</a>`}</td>
          <td>${e.ip ?? '–'}</td><td><code class="json">${Object.keys(e.detail).length === 0 ? '' : JSON.stringify(e.detail)}</code></td>
        </tr>`)}</tbody>
      </table></div>
      <${Pager} pager=${pager} nextCursor=${list.nextCursor} label="Pages of events" />`}
  </main>`
}
