import { api } from '../api.js'
import { html, useState, words } from '../lib.js'
import { Busy, Field, FormError, useAction } from '../ui.js'

const ENVIRONMENTS = [['development', 'Development'], ['staging', 'Staging'], ['production', 'Production']]
const EDITABLE = ['name', 'service', 'description', 'environment', 'tags', 'scopes', 'metadata', 'expiresAt', 'rotationIntervalDays', 'monthlyLimit', 'rateLimit']

// Whole numbers go as numbers; anything else goes as typed, so the API's own message explains it.
const whole = (text) => (/^\s*\d+\s*$/.test(text) ? Number(text) : text.trim())
const localTime = (iso) => {
  if (iso === null) return ''
  const d = new Date(iso)
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16)
}

/** The form's text values for a key (empty for a new one). */
function formOf (key) {
  return {
    name: key?.name ?? '',
    service: key?.service ?? '',
    description: key?.description ?? '',
    environment: key?.environment ?? 'development',
    tags: key?.tags.join(', ') ?? '',
    scopes: key?.scopes.join(', ') ?? '',
    metadata: key === undefined || Object.keys(key.metadata).length === 0 ? '' : JSON.stringify(key.metadata, null, 2),
    expiresAt: localTime(key?.expiresAt ?? null),
    rotationIntervalDays: key?.rotationIntervalDays === null || key === undefined ? '' : String(key.rotationIntervalDays),
    monthlyLimit: key?.monthlyLimit === null || key === undefined ? '' : String(key.monthlyLimit),
    rateLimit: key?.rateLimit?.limit === undefined ? '' : String(key.rateLimit.limit),
    rateWindow: key?.rateLimit?.windowMs === undefined ? '' : String(key.rateLimit.windowMs / 1000),
    kind: key?.kind ?? 'issued',
    secret: '',
    passphrase: '',
    prefix: '',
    recoverable: false
  }
}

/** The editable fields as the API takes them; an empty field is null. A metadata typo throws for its field. */
function editableOf (form) {
  let metadata = {}
  if (form.metadata.trim() !== '') {
    try {
      metadata = JSON.parse(form.metadata)
    } catch {
      throw Object.assign(new Error('Metadata must be a JSON object, for example {"plan": "pro"}.'), { field: 'metadata', text: 'Metadata must be a JSON object, for example {"plan": "pro"}.' })
    }
  }
  const text = (v) => (v.trim() === '' ? null : v.trim())
  return {
    name: form.name.trim(),
    service: text(form.service),
    description: text(form.description),
    environment: form.environment,
    tags: words(form.tags),
    scopes: words(form.scopes),
    metadata,
    expiresAt: form.expiresAt === '' ? null : new Date(form.expiresAt).toISOString(),
    rotationIntervalDays: text(form.rotationIntervalDays) === null ? null : whole(form.rotationIntervalDays),
    monthlyLimit: text(form.monthlyLimit) === null ? null : whole(form.monthlyLimit),
    rateLimit: text(form.rateLimit) === null ? null : { limit: whole(form.rateLimit), windowMs: text(form.rateWindow) === null ? 1000 : Math.round(Number(form.rateWindow) * 1000) || form.rateWindow }
  }
}

function EditableFields ({ form, set, action, kind }) {
  const err = action.fieldError
  return html`
    <${Field} label="Name" name="name" value=${form.name} onInput=${set('name')} error=${err('name')} />
    <div class="grid2">
      <${Field} label="Service" name="service" hint="The provider or system, e.g. stripe" value=${form.service} onInput=${set('service')} error=${err('service')} />
      <${Field} label="Environment" name="environment" value=${form.environment} options=${ENVIRONMENTS} onInput=${set('environment')} error=${err('environment')} />
    </div>
    <${Field} label="Description" name="description" multiline value=${form.description} onInput=${set('description')} error=${err('description')} />
    <${Field} label="Tags" name="tags" hint="Separated by commas" value=${form.tags} onInput=${set('tags')} error=${err('tags')} />
    ${kind === 'issued' && html`<${Field} label="Scopes" name="scopes" hint="Permissions the key carries, separated by commas; * grants all" value=${form.scopes} onInput=${set('scopes')} error=${err('scopes')} />`}
    <${Field} label="Metadata (JSON)" name="metadata" multiline hint="Returned when the key is verified; at most 4 KiB" value=${form.metadata} onInput=${set('metadata')} error=${err('metadata')} />
    <div class="grid2">
      <${Field} label="Expires at" name="expiresAt" type="datetime-local" hint="Empty: never" value=${form.expiresAt} onInput=${set('expiresAt')} error=${err('expiresAt')} />
      <${Field} label="Rotate every (days)" name="rotationIntervalDays" inputmode="numeric" value=${form.rotationIntervalDays} onInput=${set('rotationIntervalDays')} error=${err('rotationIntervalDays')} />
    </div>
    ${kind === 'issued' && html`<div class="grid3">
      <${Field} label="Monthly limit (units)" name="monthlyLimit" inputmode="numeric" value=${form.monthlyLimit} onInput=${set('monthlyLimit')} error=${err('monthlyLimit')} />
      <${Field} label="Rate limit (requests)" name="rateLimit" inputmode="numeric" value=${form.rateLimit} onInput=${set('rateLimit')} error=${err('rateLimit')} />
      <${Field} label="Per (seconds)" name="rateWindow" inputmode="numeric" value=${form.rateWindow} onInput=${set('rateWindow')} />
    </div>`}`
}

const FIELDS = [...EDITABLE, 'kind', 'secret', 'passphrase', 'prefix', 'recoverable', 'rateWindow']

/** A new held key (a secret you were given) or issued key (one Keyward generates for your customers). */
export function CreateKeyForm ({ onCreated, onCancel }) {
  const [form, setForm] = useState(formOf(undefined))
  const action = useAction(FIELDS)
  const set = (name) => (value) => setForm({ ...form, [name]: value })
  const held = form.kind === 'held'
  // An issued key has no secret to type: one typed for a held key is dropped, not kept unseen in the form.
  const toIssued = () => setForm({ ...form, kind: 'issued', secret: '' })
  const submit = (e) => {
    e.preventDefault()
    action.run(async () => {
      const all = editableOf(form)
      // Only what was filled in: the API's defaults stand for the rest.
      const body = Object.fromEntries(Object.entries(all).filter(([name, v]) => v !== null && !(Array.isArray(v) && v.length === 0) &&
        !(name === 'metadata' && Object.keys(v).length === 0) && (held ? !['scopes', 'monthlyLimit', 'rateLimit'].includes(name) : true)))
      body.kind = form.kind
      if (held) Object.assign(body, { secret: form.secret, passphrase: form.passphrase })
      else {
        if (form.prefix.trim() !== '') body.prefix = form.prefix.trim()
        if (form.recoverable) Object.assign(body, { recoverable: true, passphrase: form.passphrase })
      }
      const answer = await api('POST', '/api/keys', body)
      setForm(formOf(undefined))
      onCreated(answer)
    })
  }
  const err = action.fieldError
  return html`<form onSubmit=${submit} novalidate aria-label="New key">
    <fieldset class="kinds"><legend>Kind of key</legend>
      <label><input type="radio" name="kind" value="issued" checked=${!held} onChange=${toIssued} /> Issued: Keyward generates it for your customers and verifies it</label>
      <label><input type="radio" name="kind" value="held" checked=${held} onChange=${() => set('kind')('held')} /> Held: a secret you were given (a provider's API key), stored encrypted</label>
    </fieldset>
    ${held && html`
      <${Field} label="Secret" name="secret" type="password" autocomplete="off" value=${form.secret} onInput=${set('secret')} error=${err('secret')} />
      <${Field} label="Vault passphrase" name="passphrase" type="password" autocomplete="off" value=${form.passphrase} onInput=${set('passphrase')} error=${err('passphrase')} />`}
    ${!held && html`
      <${Field} label="Prefix" name="prefix" hint="Letters, digits and _; up to 16 characters (default kw_)" value=${form.prefix} onInput=${set('prefix')} error=${err('prefix')} />`}
    <${EditableFields} form=${form} set=${set} action=${action} kind=${form.kind} />
    ${!held && html`
      <${Field} label="Recoverable (keep an encrypted copy you can reveal with the passphrase)" name="recoverable" type="checkbox" value=${form.recoverable} onInput=${set('recoverable')} error=${err('recoverable')} />
      ${form.recoverable && html`<${Field} label="Vault passphrase" name="passphrase" type="password" autocomplete="off" value=${form.passphrase} onInput=${set('passphrase')} error=${err('passphrase')} />`}`}
    <${FormError} text=${action.formError} />
    <div class="actions">
      <button type="button" class="btn" onClick=${onCancel}>Cancel</button>
      <${Busy} busy=${action.busy} label="Create key" working="Creating…" />
    </div>
  </form>`
}

/** Changes the editable fields of a key; only the fields that differ are sent. */
export function EditKeyForm ({ keyView, onSaved, onCancel }) {
  const [form, setForm] = useState(formOf(keyView))
  const action = useAction(FIELDS)
  const set = (name) => (value) => setForm({ ...form, [name]: value })
  const submit = (e) => {
    e.preventDefault()
    action.run(async () => {
      const before = editableOf(formOf(keyView))
      const after = editableOf(form)
      const changed = Object.fromEntries(Object.entries(after).filter(([name, v]) => JSON.stringify(v) !== JSON.stringify(before[name])))
      if (Object.keys(changed).length === 0) { onCancel(); return }
      onSaved(await api('PATCH', '/api/keys/' + keyView.id, changed))
    })
  }
  return html`<form onSubmit=${submit} novalidate aria-label="Edit key">
    <${EditableFields} form=${form} set=${set} action=${action} kind=${keyView.kind} />
    <${FormError} text=${action.formError} />
    <div class="actions">
      <button type="button" class="btn" onClick=${onCancel}>Cancel</button>
      <${Busy} busy=${action.busy} label="Save" working="Saving…" />
    </div>
  </form>`
}
