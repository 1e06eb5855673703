import { api, query } from '../api.js'
import { html, useEffect, useState, when } from '../lib.js'
import { Busy, Field, FormError, Loading, Pager, SecretOnce, useAction, usePager } from '../ui.js'

/** Unread notifications, counted for the navigation (100+ past one page). */
export async function unreadCount () {
  const page = await api('GET', '/api/notifications' + query({ unread: true, limit: 100 }))
  return page.nextCursor === null ? String(page.items.length) : '100+'
}

export function NotificationsPage ({ onRead }) {
  const [unreadOnly, setUnreadOnly] = useState(false)
  const [list, setList] = useState(null)
  const [error, setError] = useState(null)
  const pager = usePager()
  const load = () => api('GET', '/api/notifications' + query({ unread: unreadOnly ? true : undefined, limit: 25, cursor: pager.cursor })).then(setList, setError)
  useEffect(() => { load() }, [unreadOnly, pager.cursor])
  const markRead = async (id) => {
    try {
      await api('POST', `/api/notifications/${id}/read`)
      await load()
      onRead()
    } catch (err) { setError(err) }
  }
  return html`<main id="main" tabindex="-1">
    <h1>Notifications</h1>
    <section class="card" aria-labelledby="inbox-title">
      <div class="section-head">
        <h2 id="inbox-title">Inbox</h2>
        <div class="field check"><input id="unread-only" type="checkbox" checked=${unreadOnly} onChange=${(e) => { setUnreadOnly(e.currentTarget.checked); pager.reset() }} /><label for="unread-only">Unread only</label></div>
      </div>
      <${FormError} text=${error?.text} />
      ${list === null
        ? html`<${Loading} what="Loading notifications" />`
        : list.items.length === 0
          ? html`<p class="muted">Nothing here. Keyward tells you when a key nears its monthly limit, is about to expire or is due for rotation.</p>`
          : html`<ul class="inbox">${list.items.map((n) => html`<li key=${n.id} class=${n.readAt === null ? 'unread' : ''}>
            <div><strong>${n.title}</strong>
              <div class="muted">${when(n.createdAt)}${n.keyId !== null && html` · <a href=${'/console/keys/' + n.keyId}>the key</a>`}</div></div>
            ${n.readAt === null ? html`<button type="button" class="btn" onClick=${() => markRead(n.id)}>Mark read<span class="sr-only">: ${n.title}</span></button>` : html`<span class="muted">read</span>`}
          </li>`)}</ul>`}
      ${list !== null && html`<${Pager} pager=${pager} nextCursor=${list.nextCursor} label="Pages of notifications" />`}
    </section>
    <${WebhookSettings} />
  </main>`
}

/** Where notifications are POSTed, signed with a secret shown once when Keyward generates it. */
function WebhookSettings () {
  const [hook, setHook] = useState(null)
  const [form, setForm] = useState({ url: '', secret: '' })
  const [secret, setSecret] = useState(null)
  const action = useAction(['url', 'secret'])
  useEffect(() => { api('GET', '/api/auth/me/webhook').then((h) => { setHook(h); setForm({ url: h.url ?? '', secret: '' }) }, action.setError) }, [])
  const save = (e) => {
    e.preventDefault()
    action.run(async () => {
      const body = form.secret === '' ? { url: form.url.trim() } : { url: form.url.trim(), secret: form.secret }
      const answer = await api('PUT', '/api/auth/me/webhook', body)
      setHook({ ...answer, secret: undefined })
      setForm({ url: answer.url ?? '', secret: '' })
      if (answer.secret !== undefined) setSecret(answer.secret)
    })
  }
  const remove = () => action.run(async () => {
    await api('DELETE', '/api/auth/me/webhook')
    setHook({ configured: false, url: null, updatedAt: null })
    setForm({ url: '', secret: '' })
  })
  return html`<section class="card" aria-labelledby="webhook-title">
    <h2 id="webhook-title">Webhook</h2>
    <p class="muted">Keyward POSTs each notification to this address, signed with HMAC-SHA256 in the Keyward-Signature header.</p>
    ${hook === null
      ? html`<${Loading} what="Loading" />`
      : html`<form onSubmit=${save} novalidate aria-label="Webhook settings">
        <p>${hook.configured ? html`Sending to <code>${hook.url}</code> since ${when(hook.updatedAt)}.` : 'No webhook set.'}</p>
        <${Field} label="URL" name="url" type="url" value=${form.url} onInput=${(v) => setForm({ ...form, url: v })} error=${action.fieldError('url')} />
        <${Field} label="Signing secret (optional)" name="secret" type="password" autocomplete="off" hint="16 characters or more; leave empty and Keyward generates one" value=${form.secret} onInput=${(v) => setForm({ ...form, secret: v })} error=${action.fieldError('secret')} />
        <${FormError} text=${action.formError} />
        <div class="actions">
          ${hook.configured && html`<button type="button" class="btn danger" onClick=${remove} disabled=${action.busy}>Remove webhook</button>`}
          <${Busy} busy=${action.busy} label="Save webhook" working="Saving…" />
        </div>
      </form>`}
    ${secret !== null && html`<${SecretOnce} secret=${secret} what="The signing secret" onDone=${() => setSecret(null)} />`}
  </section>`
}
