import { api } from '../api.js'
import { html, number, useEffect, useState, when } from '../lib.js'
import { Badge, Busy, Dialog, FormError, Loading, useAction } from '../ui.js'
import { EditKeyForm } from './key-form.js'
import { KeyAudit, RevealForm, RotateForm, UsagePanel, VersionsPanel } from './key-panels.js'

function Fields ({ k }) {
  const rows = [
    ['Kind', k.kind === 'issued' ? 'Issued (Keyward verifies it)' : 'Held (stored encrypted)'],
    ['Service', k.service ?? '–'],
    ['Environment', k.environment],
    ['Starts with', html`<code>${k.start}…</code>`],
    ['Version', k.version],
    ['Description', k.description ?? '–'],
    ['Tags', k.tags.length === 0 ? '–' : k.tags.join(', ')],
    ...(k.kind === 'issued'
      ? [['Scopes', k.scopes.length === 0 ? '–' : k.scopes.join(', ')],
          ['Monthly limit', k.monthlyLimit === null ? 'none' : number(k.monthlyLimit) + ' units'],
          ['Rate limit', k.rateLimit === null ? 'none' : `${number(k.rateLimit.limit)} per ${k.rateLimit.windowMs / 1000} s`],
          ['Recoverable', k.recoverable ? 'yes' : 'no']]
      : []),
    ['Metadata', Object.keys(k.metadata).length === 0 ? '–' : html`<code class="json">${JSON.stringify(k.metadata)}</code>`],
    ['Expires', when(k.expiresAt)],
    ['Rotation due', k.rotationIntervalDays === null ? 'no schedule' : `${when(k.rotationDueAt)} (every ${k.rotationIntervalDays} days)`],
    ['Created', when(k.createdAt)],
    ['Last used', when(k.lastUsedAt)],
    ...(k.revokedAt === null ? [] : [['Revoked', when(k.revokedAt)]])
  ]
  return html`<dl class="fields">${rows.map(([label, value]) => html`<div><dt>${label}</dt><dd>${value}</dd></div>`)}</dl>`
}

/** One key: its fields, the actions on it, its versions, usage and recent events. */
export function KeyPage ({ id }) {
  const [k, setKey] = useState(null)
  const [versions, setVersions] = useState([])
  const [error, setError] = useState(null)
  const [dialog, setDialog] = useState(null)
  const toggle = useAction([])
  const load = () => {
    api('GET', '/api/keys/' + id).then(setKey, setError)
    api('GET', `/api/keys/${id}/versions`).then((v) => setVersions(v.items), () => setVersions([]))
  }
  useEffect(load, [id])
  const changed = (next) => { setDialog(null); setKey(next); load() }
  if (error !== null) return html`<main id="main" tabindex="-1"><p><a href="/console/keys">← Keys</a></p><${FormError} text=${error.text} /></main>`
  if (k === null) return html`<main id="main" tabindex="-1"><${Loading} what="Loading the key" /></main>`
  const revoked = k.status === 'revoked'
  const revealable = k.kind === 'held' || k.recoverable
  const setStatus = (status) => toggle.run(async () => changed(await api('PATCH', '/api/keys/' + k.id, { status })))
  const close = () => setDialog(null)
  return html`<main id="main" tabindex="-1">
    <p><a href="/console/keys">← Keys</a></p>
    <div class="page-head">
      <h1>${k.name} <${Badge} status=${k.status} /></h1>
      <div class="row actions-bar">
        ${!revoked && html`<button type="button" class="btn" onClick=${() => setDialog('edit')}>Edit</button>`}
        ${k.status === 'active' && html`<${Busy} type="button" kind="" busy=${toggle.busy} label="Disable" working="Disabling…" onClick=${() => setStatus('disabled')} />`}
        ${k.status === 'disabled' && html`<${Busy} type="button" kind="" busy=${toggle.busy} label="Enable" working="Enabling…" onClick=${() => setStatus('active')} />`}
        ${!revoked && html`<button type="button" class="btn" onClick=${() => setDialog('rotate')}>Rotate</button>`}
        ${revealable && !revoked && html`<button type="button" class="btn" onClick=${() => setDialog('reveal')}>Reveal</button>`}
        ${!revoked && html`<button type="button" class="btn danger" onClick=${() => setDialog('revoke')}>Revoke</button>`}
      </div>
    </div>
    <${FormError} text=${toggle.formError} />
    <section class="card" aria-label="Details"><${Fields} k=${k} /></section>
    ${k.kind === 'issued' && html`<${UsagePanel} keyId=${k.id} />`}
    <${VersionsPanel} versions=${versions} />
    <${KeyAudit} keyId=${k.id} version=${k.updatedAt} />
    ${dialog === 'edit' && html`<${Dialog} title="Edit key" wide onClose=${close}><${EditKeyForm} keyView=${k} onSaved=${changed} onCancel=${close} /></${Dialog}>`}
    ${dialog === 'rotate' && html`<${Dialog} title=${'Rotate ' + k.name} onClose=${close}><${RotateForm} keyView=${k} onRotated=${changed} onCancel=${close} /></${Dialog}>`}
    ${dialog === 'reveal' && html`<${Dialog} title=${'Reveal ' + k.name} onClose=${close}><${RevealForm} keyView=${k} versions=${versions} onClose=${close} /></${Dialog}>`}
    ${dialog === 'revoke' && html`<${Dialog} title=${'Revoke ' + k.name + '?'} onClose=${close}><${RevokeForm} keyView=${k} onRevoked=${changed} onCancel=${close} /></${Dialog}>`}
  </main>`
}

function RevokeForm ({ keyView, onRevoked, onCancel }) {
  const action = useAction([])
  const submit = (e) => {
    e.preventDefault()
    action.run(async () => {
      await api('DELETE', '/api/keys/' + keyView.id)
      onRevoked(await api('GET', '/api/keys/' + keyView.id))
    })
  }
  return html`<form onSubmit=${submit} aria-label="Revoke key">
    <p class="warning">The key stops working everywhere at once. This cannot be undone.</p>
    <${FormError} text=${action.formError} />
    <div class="actions"><button type="button" class="btn" onClick=${onCancel}>Cancel</button><${Busy} kind="danger" busy=${action.busy} label="Revoke key" working="Revoking…" /></div>
  </form>`
}
