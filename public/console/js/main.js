import { api } from './api.js'
import { html, render, useEffect, useRef, useState } from './lib.js'
import { usePath } from './router.js'
import { currentUser, endedReason, onSessionChange, restore, signOut } from './session.js'
import { Loading } from './ui.js'
import { AccountPage } from './pages/account.js'
import { AuditPage } from './pages/audit.js'
import { AuthPage } from './pages/auth.js'
import { KeyPage } from './pages/key.js'
import { KeysPage } from './pages/keys.js'
import { NotificationsPage, unreadCount } from './pages/notifications.js'
import { UsagePage } from './pages/usage.js'

const NAV = [['/console/keys', 'Keys'], ['/console/usage', 'Usage'], ['/console/audit', 'Audit'], ['/console/notifications', 'Notifications'], ['/console/account', 'Account']]
const TITLES = { keys: 'Keys', usage: 'Usage', audit: 'Audit', notifications: 'Notifications', account: 'Account' }

function Header ({ path, user, unread }) {
  const [busy, setBusy] = useState(false)
  const out = async (everywhere) => {
    setBusy(true)
    try { await signOut(everywhere) } finally { setBusy(false) }
  }
  return html`<header class="top">
    <a class="skip" href="#main">Skip to content</a>
    <a class="brand" href="/console/keys">Keyward <span>console</span></a>
    <nav aria-label="Main"><ul>${NAV.map(([href, label]) => html`<li>
      <a href=${href} aria-current=${path === href || (href === '/console/keys' && (path === '/console' || path.startsWith('/console/keys/'))) ? 'page' : undefined}>
        ${label}${label === 'Notifications' && unread !== null && unread !== '0' && html` <span class="count" aria-label=${unread + ' unread'}>${unread}</span>`}
      </a></li>`)}</ul></nav>
    <div class="who">
      <span class="muted">${user.email}</span>
      <button type="button" class="btn" onClick=${() => out(false)} disabled=${busy}>${busy ? 'Signing out…' : 'Sign out'}</button>
    </div>
  </header>`
}

function View ({ path, user, vault, reloadVault, setUser, refreshUnread }) {
  const [, section, id] = path.replace(/\/+$/, '').split('/').slice(1)
  if (section === 'keys' && id !== undefined) return html`<${KeyPage} id=${decodeURIComponent(id)} />`
  if (section === 'usage') return html`<${UsagePage} />`
  if (section === 'audit') return html`<${AuditPage} />`
  if (section === 'notifications') return html`<${NotificationsPage} onRead=${refreshUnread} />`
  if (section === 'account') return html`<${AccountPage} user=${user} vault=${vault} onVaultChange=${reloadVault} onUser=${setUser} />`
  return html`<${KeysPage} vault=${vault} onVaultChange=${reloadVault} />`
}

function App () {
  const path = usePath()
  const [user, setUser] = useState(undefined)
  const [vault, setVault] = useState(null)
  const [unread, setUnread] = useState(null)
  const [problem, setProblem] = useState(null)
  const first = useRef(true)
  useEffect(() => {
    const stop = onSessionChange((next) => { setProblem(endedReason()); setUser(next) })
    restore().then(setUser, (err) => { setProblem(err.text ?? String(err)); setUser(null) })
    return stop
  }, [])
  const reloadVault = () => api('GET', '/api/vault').then(setVault, () => setVault(null))
  const refreshUnread = () => unreadCount().then(setUnread, () => setUnread(null))
  useEffect(() => {
    if (user === null || user === undefined) { setVault(null); setUnread(null); return }
    reloadVault()
    refreshUnread()
  }, [user?.id])
  // A new view: its title, and focus on its content so keyboard and screen-reader users start there.
  useEffect(() => {
    const section = path.split('/')[2] ?? 'keys'
    document.title = `${TITLES[section] ?? 'Keys'} · Keyward console`
    if (first.current) { first.current = false; return }
    document.getElementById('main')?.focus()
  }, [path, user === null])
  if (user === undefined) return html`<main id="main" class="auth"><${Loading} what="Opening the console" /></main>`
  if (user === null) {
    return html`<div>${problem !== null && html`<p class="form-error" role="alert">${problem}</p>`}<${AuthPage} /></div>`
  }
  return html`<div class="shell">
    <${Header} path=${path} user=${currentUser() ?? user} unread=${unread} />
    <${View} path=${path} user=${user} vault=${vault} reloadVault=${reloadVault} setUser=${setUser} refreshUnread=${refreshUnread} />
  </div>`
}

render(html`<${App} />`, document.getElementById('app'))
