import { useEffect, useState } from './lib.js'

// History routing under /console: the server answers every view's address with the page itself.
const listeners = new Set()

export function navigate (path, { replace = false } = {}) {
  if (path === location.pathname) return
  history[replace ? 'replaceState' : 'pushState'](null, '', path)
  for (const listener of listeners) listener(path)
}

export function usePath () {
  const [path, setPath] = useState(location.pathname)
  useEffect(() => {
    const update = () => setPath(location.pathname)
    listeners.add(update)
    window.addEventListener('popstate', update)
    return () => { listeners.delete(update); window.removeEventListener('popstate', update) }
  }, [])
  return path
}

// Same-page links move without reloading; modified clicks (new tab) keep the browser's way.
document.addEventListener('click', (event) => {
  const link = event.target instanceof Element ? event.target.closest('a[href^="/console"]') : null
  if (link === null || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
  event.preventDefault()
  navigate(link.getAttribute('href'))
})
