import { api } from '../api.js'
import { html, useState } from '../lib.js'
import { Busy, Field, FormError, useAction } from '../ui.js'

/** Sets the vault passphrase the first time, or changes it (`passphraseSet`). */
export function PassphraseForm ({ passphraseSet, onDone }) {
  const [form, setForm] = useState({ currentPassphrase: '', passphrase: '', confirm: '' })
  const [done, setDone] = useState(null)
  const action = useAction(['currentPassphrase', 'passphrase', 'confirm'])
  const set = (name) => (value) => setForm({ ...form, [name]: value })
  const submit = (e) => {
    e.preventDefault()
    if (form.passphrase !== form.confirm) {
      action.setError({ field: 'confirm', text: 'The two passphrases differ.' })
      return
    }
    action.run(async () => {
      const body = passphraseSet ? { currentPassphrase: form.currentPassphrase, passphrase: form.passphrase } : { passphrase: form.passphrase }
      const { result } = await api('PUT', '/api/vault/passphrase', body)
      setForm({ currentPassphrase: '', passphrase: '', confirm: '' })
      setDone(result === 'created' ? 'Your vault passphrase is set.' : 'Your vault passphrase is changed; every stored secret stays readable with the new one.')
      onDone?.()
    })
  }
  return html`<form onSubmit=${submit} novalidate aria-label=${passphraseSet ? 'Change vault passphrase' : 'Set vault passphrase'}>
    <p class="notice">
      The passphrase encrypts the secrets you store. <strong>Keyward never stores it and cannot recover it:</strong> if you
      forget it, the stored secrets cannot be read again by anyone. Write it down somewhere safe.
    </p>
    ${passphraseSet && html`<${Field} label="Current passphrase" name="currentPassphrase" type="password" autocomplete="off" value=${form.currentPassphrase} onInput=${set('currentPassphrase')} error=${action.fieldError('currentPassphrase') ?? (action.error?.code === 'WRONG_PASSPHRASE' ? action.error.text : null)} />`}
    <${Field} label=${passphraseSet ? 'New passphrase' : 'Passphrase'} name="passphrase" type="password" autocomplete="new-password" hint="At least 12 characters." value=${form.passphrase} onInput=${set('passphrase')} error=${passphraseSet && action.error?.code === 'WRONG_PASSPHRASE' ? null : action.fieldError('passphrase')} />
    <${Field} label="Repeat the passphrase" name="confirm" type="password" autocomplete="new-password" value=${form.confirm} onInput=${set('confirm')} error=${action.fieldError('confirm')} />
    <${FormError} text=${action.formError} />
    <p class="ok" role="status">${done}</p>
    <div class="actions"><${Busy} busy=${action.busy} label=${passphraseSet ? 'Change passphrase' : 'Set passphrase'} working="Saving…" /></div>
  </form>`
}
