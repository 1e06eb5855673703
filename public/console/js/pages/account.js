import { api } from '../api.js'
import { html, useEffect, useState, when } from '../lib.js'
import { forget, signOut } from '../session.js'
import { Busy, Field, FormError, Loading, useAction } from '../ui.js'
import { PassphraseForm } from './vault.js'

function Sessions () {
  const [items, setItems] = useState(null)
  const action = useAction([])
  const load = () => api('GET', '/api/auth/sessions').then((s) => setItems(s.items), action.setError)
  useEffect(() => { load() }, [])
  const end = (id) => action.run(async () => { await api('DELETE', '/api/auth/sessions/' + id); await load() })
  return html`<section class="card" aria-labelledby="sessions-title">
    <h2 id="sessions-title">Sessions</h2>
    <${FormError} text=${action.formError} />
    ${items === null
      ? html`<${Loading} what="Loading sessions" />`
      : html`<ul class="sessions">${items.filter((s) => s.revokedAt === null).map((s) => html`<li key=${s.id}>
        <div><strong>${s.current ? 'This browser' : s.userAgent ?? 'Unknown client'}</strong>
          <div class="muted">${s.ip ?? ''} · signed in ${when(s.createdAt)} · last used ${when(s.lastUsedAt)}</div></div>
        ${s.current ? html`<span class="muted">current</span>` : html`<button type="button" class="btn" onClick=${() => end(s.id)} disabled=${action.busy}>End<span class="sr-only"> session from ${when(s.createdAt)}</span></button>`}
      </li>`)}</ul>
      <div class="actions"><button type="button" class="btn" onClick=${() => signOut(true)}>Sign out everywhere</button></div>`}
  </section>`
}

function PasswordForm () {
  const [form, setForm] = useState({ currentPassword: '', newPassword: '' })
  const [done, setDone] = useState(null)
  const action = useAction(['currentPassword', 'newPassword'])
  const submit = (e) => {
    e.preventDefault()
    action.run(async () => {
      await api('POST', '/api/auth/change-password', form)
      setForm({ currentPassword: '', newPassword: '' })
      setDone('Password changed. Your other sessions were ended.')
    })
  }
  const wrong = action.error?.code === 'WRONG_PASSWORD' ? action.error.text : null
  return html`<form onSubmit=${submit} novalidate aria-label="Change password">
    <${Field} label="Current password" name="currentPassword" type="password" autocomplete="current-password" value=${form.currentPassword} onInput=${(v) => setForm({ ...form, currentPassword: v })} error=${wrong ?? action.fieldError('currentPassword')} />
    <${Field} label="New password" name="newPassword" type="password" autocomplete="new-password" hint="10 to 256 characters" value=${form.newPassword} onInput=${(v) => setForm({ ...form, newPassword: v })} error=${action.fieldError('newPassword') ?? (action.error?.code === 'WEAK_PASSWORD' ? action.error.text : null)} />
    ${wrong === null && action.error?.code !== 'WEAK_PASSWORD' && html`<${FormError} text=${action.formError} />`}
    <p class="ok" role="status">${done}</p>
    <div class="actions"><${Busy} busy=${action.busy} label="Change password" working="Changing…" /></div>
  </form>`
}

function Export () {
  const action = useAction([])
  const download = () => action.run(async () => {
    const data = await api('GET', '/api/auth/me/export')
    const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }))
    const link = Object.assign(document.createElement('a'), { href: url, download: `keyward-account-${new Date().toISOString().slice(0, 10)}.json` })
    link.click()
    setTimeout(() => URL.revokeObjectURL(url), 1000)
  })
  return html`<div>
    <p class="muted">Your account, sessions, key details and audit trail as JSON. Never secrets.</p>
    <${FormError} text=${action.formError} />
    <${Busy} type="button" kind="" busy=${action.busy} label="Download my data" working="Preparing…" onClick=${download} />
  </div>`
}

function DeleteAccount () {
  const [password, setPassword] = useState('')
  const [sure, setSure] = useState(false)
  const action = useAction(['password'])
  const submit = (e) => {
    e.preventDefault()
    if (!sure) { action.setError({ field: 'sure', text: 'Tick the box to confirm.' }); return }
    action.run(async () => {
      await api('DELETE', '/api/auth/me', { password })
      forget()
    })
  }
  const wrong = action.error?.code === 'WRONG_PASSWORD' ? action.error.text : null
  return html`<form onSubmit=${submit} novalidate aria-label="Delete account">
    <p class="warning"><strong>This deletes your account and everything in it:</strong> every key (issued keys stop verifying at once), every stored secret, all usage and sessions. It cannot be undone.</p>
    <${Field} label="Password" name="password" type="password" autocomplete="current-password" value=${password} onInput=${setPassword} error=${wrong ?? action.fieldError('password')} />
    <${Field} label="I understand that this cannot be undone" name="sure" type="checkbox" value=${sure} onInput=${setSure} error=${action.error?.field === 'sure' ? action.error.text : null} />
    ${wrong === null && action.error?.field !== 'sure' && html`<${FormError} text=${action.formError} />`}
    <div class="actions"><${Busy} kind="danger" busy=${action.busy} label="Delete my account" working="Deleting…" /></div>
  </form>`
}

function Profile ({ user, onUser }) {
  const [name, setName] = useState(user.name ?? '')
  const [done, setDone] = useState(null)
  const action = useAction(['name'])
  const submit = (e) => {
    e.preventDefault()
    action.run(async () => { onUser(await api('PATCH', '/api/auth/me', { name: name.trim() === '' ? null : name.trim() })); setDone('Saved.') })
  }
  return html`<form onSubmit=${submit} novalidate aria-label="Profile">
    <p>Signed in as <strong>${user.email}</strong></p>
    <${Field} label="Name" name="name" autocomplete="name" value=${name} onInput=${setName} error=${action.fieldError('name')} />
    <${FormError} text=${action.formError} />
    <p class="ok" role="status">${done}</p>
    <div class="actions"><${Busy} busy=${action.busy} label="Save name" working="Saving…" /></div>
  </form>`
}

export function AccountPage ({ user, vault, onVaultChange, onUser }) {
  return html`<main id="main" tabindex="-1">
    <h1>Account</h1>
    <div class="two">
      <section class="card" aria-labelledby="profile-title"><h2 id="profile-title">Profile</h2><${Profile} user=${user} onUser=${onUser} /></section>
      <section class="card" aria-labelledby="password-title"><h2 id="password-title">Password</h2><${PasswordForm} /></section>
    </div>
    <section class="card" aria-labelledby="vault-title">
      <h2 id="vault-title">Vault passphrase</h2>
      ${vault === null ? html`<${Loading} />` : html`<${PassphraseForm} passphraseSet=${vault.passphraseSet} onDone=${onVaultChange} />`}
    </section>
    <${Sessions} />
    <section class="card" aria-labelledby="export-title"><h2 id="export-title">Export</h2><${Export} /></section>
    <section class="card danger-zone" aria-labelledby="delete-title"><h2 id="delete-title">Delete account</h2><${DeleteAccount} /></section>
  </main>`
}
