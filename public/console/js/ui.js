import { api, query } from './api.js'
import { html, useEffect, useRef, useState } from './lib.js'
import { asApiError } from './errors.js'

/**
 * A form's state: its busy flag and the last error, which shows next to the field it names or,
 * when it names none of this form's fields, above the buttons.
 */
export function useAction (fields = []) {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState(null)
  const mounted = useRef(true)
  useEffect(() => () => { mounted.current = false }, [])
  async function run (work) {
    setBusy(true)
    setError(null)
    try {
      return await work()
    } catch (err) {
      if (mounted.current) setError(asApiError(err))
      return undefined
    } finally {
      if (mounted.current) setBusy(false)
    }
  }
  return {
    busy,
    error,
    run,
    setError,
    fieldError: (name) => (error !== null && error.field === name ? error.text : null),
    formError: error !== null && !fields.includes(error.field) ? error.text : null
  }
}

let ids = 0
function useId (prefix) {
  const id = useRef(null)
  if (id.current === null) id.current = `${prefix}-${++ids}`
  return id.current
}

/** A labelled input with its error underneath, announced and tied to it by aria-describedby. */
export function Field ({ label, hint, error, type = 'text', value, onInput, multiline, options, ...rest }) {
  const id = useId('f')
  const described = [hint ? id + '-hint' : null, error ? id + '-err' : null].filter(Boolean).join(' ') || undefined
  const common = { id, 'aria-invalid': error ? 'true' : undefined, 'aria-describedby': described, ...rest }
  const set = (e) => onInput(type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value)
  let control
  if (options !== undefined) {
    control = html`<select ...${common} value=${value} onChange=${set}>${options.map(([v, text]) => html`<option value=${v}>${text}</option>`)}</select>`
  } else if (multiline) {
    control = html`<textarea ...${common} value=${value} onInput=${set} rows="3" />`
  } else if (type === 'checkbox') {
    return html`<div class="field check">
      <input ...${common} type="checkbox" checked=${value} onChange=${set} />
      <label for=${id}>${label}</label>
      ${hint && html`<p id=${id + '-hint'} class="hint">${hint}</p>`}
      ${error && html`<p id=${id + '-err'} class="field-error" role="alert">${error}</p>`}
    </div>`
  } else {
    control = html`<input ...${common} type=${type} value=${value} onInput=${set} />`
  }
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${control}
    ${hint && html`<p id=${id + '-hint'} class="hint">${hint}</p>`}
    ${error && html`<p id=${id + '-err'} class="field-error" role="alert">${error}</p>`}
  </div>`
}

export function FormError ({ text }) {
  return text ? html`<p class="form-error" role="alert">${text}</p>` : null
}

/** A button that says it is working while its action runs (and cannot be pressed twice). */
export function Busy ({ busy, label, working, kind = 'primary', type = 'submit', ...rest }) {
  return html`<button type=${type} class=${'btn ' + kind} disabled=${busy} aria-busy=${busy ? 'true' : 'false'} ...${rest}>
    ${busy && html`<span class="spinner" aria-hidden="true"></span>`}${busy ? working || 'Working…' : label}
  </button>`
}

/**
 * A modal dialog (the browser's <dialog>: the page behind is inert, Escape closes it). Focus goes
 * to its first control when it opens and back to what had it when it closes.
 */
export function Dialog ({ title, onClose, children, wide }) {
  const ref = useRef(null)
  const titleId = useId('dlg')
  useEffect(() => {
    const opener = document.activeElement
    const dialog = ref.current
    dialog.showModal()
    const first = dialog.querySelector('input:not([type=hidden]), select, textarea, button:not(.close)')
    if (first !== null) first.focus()
    return () => {
      // Closed before it leaves the page: while it is open the rest of the page is inert and cannot take focus.
      if (dialog.open) dialog.close()
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus()
    }
  }, [])
  const cancel = (e) => { e.preventDefault(); onClose() }
  return html`<dialog ref=${ref} class=${wide ? 'wide' : ''} aria-labelledby=${titleId} onCancel=${cancel}>
    <div class="dialog-head">
      <h2 id=${titleId}>${title}</h2>
      <button type="button" class="close" aria-label="Close" onClick=${onClose}>×</button>
    </div>
    ${children}
  </dialog>`
}

/** A secret shown this once: a copy button and the warning that it will not be shown again. */
export function SecretOnce ({ secret, onDone, what = 'This secret' }) {
  const [copied, setCopied] = useState(null)
  const ref = useRef(null)
  async function copy () {
    try {
      await navigator.clipboard.writeText(secret)
      setCopied('Copied to the clipboard.')
    } catch {
      // Without clipboard permission: select the text so the person can copy it themselves.
      window.getSelection().selectAllChildren(ref.current)
      setCopied('Selected: press Ctrl+C (⌘C) to copy.')
    }
  }
  return html`<div class="secret-once" role="region" aria-label="New secret">
    <p class="warning"><strong>${what} is shown only now. You will not see it again.</strong> Store it somewhere safe before you close this.</p>
    <code class="secret" ref=${ref} data-testid="secret">${secret}</code>
    <div class="row">
      <button type="button" class="btn" onClick=${copy}>Copy</button>
      <span class="muted" role="status">${copied}</span>
    </div>
    <div class="actions"><button type="button" class="btn primary" onClick=${onDone}>I have stored it</button></div>
  </div>`
}

export function Badge ({ status }) {
  return html`<span class=${'badge ' + status}>${status}</span>`
}

export function Loading ({ what = 'Loading' }) {
  return html`<p class="muted" role="status"><span class="spinner" aria-hidden="true"></span>${what}…</p>`
}

/** Previous and next page over cursor pagination: the cursors seen so far are the way back. */
export function usePager () {
  const [stack, setStack] = useState([])
  return {
    cursor: stack.length === 0 ? undefined : stack[stack.length - 1],
    page: stack.length + 1,
    next: (cursor) => setStack([...stack, cursor]),
    previous: () => setStack(stack.slice(0, -1)),
    reset: () => setStack([])
  }
}

export function Pager ({ pager, nextCursor, label }) {
  return html`<nav class="pager" aria-label=${label}>
    <button type="button" class="btn" disabled=${pager.page === 1} onClick=${pager.previous}>Previous</button>
    <span>Page ${pager.page}</span>
    <button type="button" class="btn" disabled=${nextCursor === null || nextCursor === undefined} onClick=${() => pager.next(nextCursor)}>Next</button>
  </nav>`
}

/**
 * A filtered list in pages: a change of filter settles for a moment, then reloads from the first
 * page; an answer that arrives after a newer request was made is dropped. `reload` reloads on change.
 */
export function useFilteredList (path, initial, limit, reload) {
  const [filters, setFilters] = useState(initial)
  const [applied, setApplied] = useState(initial)
  const [list, setList] = useState(null)
  const [error, setError] = useState(null)
  const pager = usePager()
  useEffect(() => {
    const timer = setTimeout(() => { setApplied(filters); pager.reset() }, 250)
    return () => clearTimeout(timer)
  }, [filters])
  useEffect(() => {
    let live = true
    setError(null)
    const trimmed = Object.fromEntries(Object.entries(applied).map(([k, v]) => [k, typeof v === 'string' ? v.trim() : v]))
    api('GET', path + query({ ...trimmed, limit, cursor: pager.cursor }))
      .then((page) => { if (live) setList(page) }, (err) => { if (live) setError(err) })
    return () => { live = false }
  }, [applied, pager.cursor, reload])
  return { filters, setFilters, list, error, setError, pager }
}
