import { html, useState } from '../lib.js'
import { signIn, signUp } from '../session.js'
import { Busy, Field, FormError, useAction } from '../ui.js'

/** Signed out: sign in, or create an account. */
export function AuthPage () {
  const [mode, setMode] = useState('signin')
  const [form, setForm] = useState({ name: '', email: '', password: '' })
  const action = useAction(['name', 'email', 'password'])
  const set = (name) => (value) => setForm({ ...form, [name]: value })
  const creating = mode === 'signup'
  const submit = (e) => {
    e.preventDefault()
    action.run(() => (creating ? signUp(form) : signIn(form)))
  }
  const switchTo = (next) => { setMode(next); action.setError(null) }
  return html`<main id="main" class="auth" tabindex="-1">
    <section class="card">
      <h1>${creating ? 'Create your account' : 'Sign in to Keyward'}</h1>
      <p class="muted">Store the API keys you hold, issue keys to your customers, and see how they are used.</p>
      <form onSubmit=${submit} novalidate aria-label=${creating ? 'Create account' : 'Sign in'}>
        ${creating && html`<${Field} label="Name (optional)" name="name" autocomplete="name" value=${form.name} onInput=${set('name')} error=${action.fieldError('name')} />`}
        <${Field} label="Email" name="email" type="email" autocomplete="username" value=${form.email} onInput=${set('email')} error=${action.fieldError('email')} />
        <${Field} label="Password" name="password" type="password" autocomplete=${creating ? 'new-password' : 'current-password'}
          hint=${creating ? '10 to 256 characters, not your email address.' : undefined}
          value=${form.password} onInput=${set('password')} error=${action.fieldError('password')} />
        <${FormError} text=${action.formError} />
        <div class="actions">
          <${Busy} busy=${action.busy} label=${creating ? 'Create account' : 'Sign in'} working=${creating ? 'Creating…' : 'Signing in…'} />
        </div>
      </form>
      <p class="switch">
        ${creating
          ? html`Already have an account? <button type="button" class="link" onClick=${() => switchTo('signin')}>Sign in</button>`
          : html`New to Keyward? <button type="button" class="link" onClick=${() => switchTo('signup')}>Create an account</button>`}
      </p>
    </section>
  </main>`
}
