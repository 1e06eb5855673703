import { api } from '../api.js'
import { html, number, useEffect, useState, when } from '../lib.js'
import { navigate } from '../router.js'
import { Badge, Dialog, FormError, Loading, Pager, SecretOnce, useFilteredList } from '../ui.js'
import { CreateKeyForm } from './key-form.js'
import { PassphraseForm } from './vault.js'

const STATUS = [['', 'Any status'], ['active', 'Active'], ['disabled', 'Disabled'], ['expired', 'Expired'], ['revoked', 'Revoked']]
const KIND = [['', 'Any kind'], ['held', 'Held'], ['issued', 'Issued']]
const ENVIRONMENT = [['', 'Any environment'], ['development', 'Development'], ['staging', 'Staging'], ['production', 'Production']]
const SORT = [['-createdAt', 'Newest first'], ['createdAt', 'Oldest first'], ['name', 'Name A–Z'], ['-name', 'Name Z–A'], ['-lastUsedAt', 'Recently used'], ['expiresAt', 'Expiring first']]
const EMPTY = { q: '', status: '', kind: '', service: '', environment: '', tag: '', sort: '-createdAt' }

function Stats ({ stats }) {
  if (stats === null) return null
  const tiles = [
    ['Keys', stats.total, ''],
    ['Active', stats.byStatus.active ?? 0, ''],
    ['Expiring within 7 days', stats.expiringSoon, stats.expiringSoon > 0 ? 'warn' : ''],
    ['Rotation due', stats.rotationDue, stats.rotationDue > 0 ? 'warn' : '']
  ]
  return html`<ul class="tiles" aria-label="Key counts">
    ${tiles.map(([label, value, tone]) => html`<li class=${'tile ' + tone}><span class="label">${label}</span><span class="value">${number(value)}</span></li>`)}
  </ul>`
}

function Select ({ label, value, options, onChange }) {
  const id = 'filter-' + label.toLowerCase().replace(/\W+/g, '-')
  return html`<div class="field"><label for=${id}>${label}</label>
    <select id=${id} value=${value} onChange=${(e) => onChange(e.currentTarget.value)}>${options.map(([v, t]) => html`<option value=${v}>${t}</option>`)}</select></div>`
}

function Text ({ label, value, onChange, type = 'text' }) {
  const id = 'filter-' + label.toLowerCase().replace(/\W+/g, '-')
  return html`<div class="field"><label for=${id}>${label}</label>
    <input id=${id} type=${type} value=${value} onInput=${(e) => onChange(e.currentTarget.value)} /></div>`
}

/** The keys list: counts, search, filters, sorting, paging, and the new-key dialog. */
export function KeysPage ({ vault, onVaultChange }) {
  const [stats, setStats] = useState(null)
  const [creating, setCreating] = useState(false)
  const [created, setCreated] = useState(null)
  const { filters, setFilters, list, error, setError, pager } = useFilteredList('/api/keys', EMPTY, 20, created)

  useEffect(() => {
    api('GET', '/api/keys/stats').then(setStats, setError)
  }, [created])

  const set = (name) => (value) => setFilters({ ...filters, [name]: value })
  const services = stats === null ? [] : Object.keys(stats.byService).sort()
  const finish = (answer) => {
    setCreating(false)
    if (answer.secret === undefined) navigate('/console/keys/' + answer.key.id)
    else setCreated(answer)
  }
  return html`<main id="main" tabindex="-1">
    <div class="page-head">
      <h1>Keys</h1>
      <button type="button" class="btn primary" onClick=${() => setCreating(true)} disabled=${vault === null}>New key</button>
    </div>
    ${vault !== null && !vault.passphraseSet && html`<section class="card" aria-labelledby="vault-setup">
      <h2 id="vault-setup">Set up your vault passphrase</h2>
      <${PassphraseForm} passphraseSet=${false} onDone=${onVaultChange} />
    </section>`}
    <${Stats} stats=${stats} />
    <form class="filters card" role="search" aria-label="Filter keys" onSubmit=${(e) => e.preventDefault()}>
      <${Text} label="Search" type="search" value=${filters.q} onChange=${set('q')} />
      <${Select} label="Status" value=${filters.status} options=${STATUS} onChange=${set('status')} />
      <${Select} label="Kind" value=${filters.kind} options=${KIND} onChange=${set('kind')} />
      <${Select} label="Service" value=${filters.service} options=${[['', 'Any service'], ...services.map((s) => [s, s])]} onChange=${set('service')} />
      <${Select} label="Environment" value=${filters.environment} options=${ENVIRONMENT} onChange=${set('environment')} />
      <${Text} label="Tag" value=${filters.tag} onChange=${set('tag')} />
      <${Select} label="Sort" value=${filters.sort} options=${SORT} onChange=${set('sort')} />
    </form>
    <${FormError} text=${error?.text} />
    ${list === null ? html`<${Loading} what="Loading keys" />` : html`<${KeyTable} items=${list.items} />`}
    ${list !== null && html`<${Pager} pager=${pager} nextCursor=${list.nextCursor} label="Pages of keys" />`}
    ${creating && html`<${Dialog} title="New key" wide onClose=${() => setCreating(false)}>
      <${CreateKeyForm} onCreated=${finish} onCancel=${() => setCreating(false)} />
    </${Dialog}>`}
    ${created !== null && html`<${Dialog} title=${'Key created: ' + created.key.name} onClose=${() => setCreated(null)}>
      <${SecretOnce} secret=${created.secret} what="This key" onDone=${() => { const id = created.key.id; setCreated(null); navigate('/console/keys/' + id) }} />
    </${Dialog}>`}
  </main>`
}

function KeyTable ({ items }) {
  if (items.length === 0) return html`<p class="card muted">No keys match.</p>`
  return html`<div class="table-wrap"><table class="keys">
    <caption class="sr-only">Keys</caption>
    <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Kind</th><th scope="col">Service</th><th scope="col">Environment</th><th scope="col">Starts with</th><th scope="col">Last used</th><th scope="col">Expires</th></tr></thead>
    <tbody>${items.map((k) => html`<tr key=${k.id}>
      <td><a href=${'/console/keys/' + k.id}>${k.name}</a>${k.tags.length > 0 && html`<div class="tags">${k.tags.map((t) => html`<span class="tag">${t}</span>`)}</div>`}</td>
      <td><${Badge} status=${k.status} /></td>
      <td>${k.kind}</td>
      <td>${k.service ?? '–'}</td>
      <td>${k.environment}</td>
      <td><code>${k.start}…</code></td>
      <td>${when(k.lastUsedAt)}</td>
      <td>${when(k.expiresAt)}</td>
    </tr>`)}</tbody>
  </table></div>`
}
