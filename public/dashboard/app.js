/* Keyward operations dashboard: signs in, then polls the admin statistics endpoints every few
   seconds and draws them with uPlot. The access token lives in memory only. */
(function () {
  'use strict'
  const POLL_MS = 3000
  const KEEP = 200
  let token = null
  let timer = null
  let previous = null
  const samples = { t: [], rps: [], p50: [], p95: [], p99: [], err: [], cache: [], limited: [], eld: [], heap: [], rss: [] }
  const charts = {}
  const $ = (id) => document.getElementById(id)

  function chart (id, series, values) {
    const el = $(id)
    // The card decides the width (the canvas inside must not): charts follow the layout.
    const width = Math.max(240, el.parentElement.clientWidth - 34)
    if (charts[id] === undefined) {
      charts[id] = new uPlot({ // eslint-disable-line new-cap, no-undef
        width,
        height: 200,
        series: [{}].concat(series.map((s) => ({ label: s.label, stroke: s.color, width: 2, points: { show: false } }))),
        axes: [{}, { size: 52 }],
        legend: { live: false }
      }, values, el)
    } else {
      charts[id].setData(values)
      if (Math.abs(charts[id].width - width) > 20) charts[id].setSize({ width, height: 200 })
    }
    el.dataset.points = String(values[0].length)
  }

  function push (name, value) {
    samples[name].push(value)
    if (samples[name].length > KEEP) samples[name].shift()
  }

  async function api (path, options) {
    const res = await fetch(path, Object.assign({ headers: { authorization: 'Bearer ' + token } }, options))
    if (res.status === 401 || res.status === 403) throw new Error(res.status === 403 ? 'This account is not an administrator' : 'Signed out')
    if (!res.ok) throw new Error('HTTP ' + res.status)
    return res.json()
  }

  function fmt (n, digits) { return Number.isFinite(n) ? n.toFixed(digits) : '–' }

  function render (stats, history) {
    const now = Date.parse(stats.at) / 1000
    const cur = stats.requests.currentMinute
    let rps = stats.requests.perSecond
    if (previous !== null && Date.parse(cur.at) === Date.parse(previous.minute.at) && now > previous.t) {
      rps = (cur.requests - previous.minute.requests) / (now - previous.t)
    }
    const limitedDelta = previous === null ? 0 : Math.max(0, cur.rateLimited - previous.minute.rateLimited)
    previous = { t: now, minute: cur }
    const errRate = cur.requests === 0 ? 0 : (cur.errors / cur.requests) * 100
    const hit = stats.cache.l1.hits + stats.cache.l1.misses === 0 ? null : (stats.cache.l1.hits / (stats.cache.l1.hits + stats.cache.l1.misses)) * 100
    push('t', now); push('rps', rps); push('p50', cur.p50Ms); push('p95', cur.p95Ms); push('p99', cur.p99Ms)
    push('err', errRate); push('cache', hit); push('limited', limitedDelta); push('eld', stats.eventLoop.delayP99Ms)
    push('heap', stats.memory.heapUsedBytes / 1048576); push('rss', stats.memory.rssBytes / 1048576)

    $('t-rps').textContent = fmt(rps, 1)
    $('t-p99').textContent = fmt(cur.p99Ms, 0) + ' ms'
    $('t-err').textContent = fmt(errRate, 2) + ' %'
    $('t-cache').textContent = hit === null ? '–' : fmt(hit, 1) + ' %'
    $('t-eld').textContent = fmt(stats.eventLoop.delayP99Ms, 1) + ' ms'
    $('t-heap').textContent = fmt(stats.memory.heapUsedBytes / 1048576, 0) + ' MiB'
    $('status').textContent = 'live · ' + new Date(stats.at).toLocaleTimeString() + ' · ' + stats.store.kind + (stats.redis.configured ? ' + Redis' : '')

    const t = samples.t
    chart('c-rps', [{ label: 'req/s', color: '#2f6fed' }], [t, samples.rps])
    chart('c-latency', [{ label: 'p50', color: '#43a047' }, { label: 'p95', color: '#fb8c00' }, { label: 'p99', color: '#c62828' }], [t, samples.p50, samples.p95, samples.p99])
    chart('c-errors', [{ label: '5xx %', color: '#c62828' }], [t, samples.err])
    chart('c-cache', [{ label: 'hit %', color: '#00897b' }], [t, samples.cache])
    chart('c-ratelimit', [{ label: '429s', color: '#8e24aa' }], [t, samples.limited])
    chart('c-eld', [{ label: 'p99 ms', color: '#6d4c41' }], [t, samples.eld])
    chart('c-memory', [{ label: 'heap', color: '#2f6fed' }, { label: 'rss', color: '#90a4ae' }], [t, samples.heap, samples.rss])
    const minutes = history.minutes
    chart('c-history', [{ label: 'requests/min', color: '#2f6fed' }, { label: 'errors/min', color: '#c62828' }],
      [minutes.map((m) => Date.parse(m.at) / 1000), minutes.map((m) => m.requests), minutes.map((m) => m.errors)])

    const list = $('alert-list')
    const alerts = stats.alerts.open.concat(stats.alerts.recent.slice(0, 5))
    list.replaceChildren(...(alerts.length === 0
      ? [Object.assign(document.createElement('li'), { className: 'muted', textContent: 'none open' })]
      : alerts.map((a) => Object.assign(document.createElement('li'), { className: a.status, textContent: a.status + ' · ' + a.description + ' · since ' + new Date(a.since).toLocaleString() }))))
    $('jobs').replaceChildren(...stats.jobs.map((j) => {
      const row = document.createElement('tr')
      for (const text of [j.name, j.lastRunAt === null ? 'never' : new Date(j.lastRunAt).toLocaleString(), j.ok === null ? '–' : (j.ok ? 'ok' : 'failed'), String(j.recentFailures)]) {
        row.appendChild(Object.assign(document.createElement('td'), { textContent: text }))
      }
      return row
    }))
  }

  async function poll () {
    try {
      const [stats, history] = await Promise.all([api('/api/system/stats'), api('/api/system/stats/history?resolution=minute')])
      render(stats, history)
    } catch (err) {
      signOut(err.message)
    }
  }

  function signOut (message) {
    token = null
    if (timer !== null) clearInterval(timer)
    timer = null
    $('board').hidden = true
    $('signin').hidden = false
    $('signin-error').textContent = message || ''
    $('status').textContent = 'signed out'
  }

  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault()
    $('signin-error').textContent = ''
    try {
      const res = await fetch('/api/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: $('email').value, password: $('password').value })
      })
      const body = await res.json()
      if (!res.ok) throw new Error(body.message || 'Sign-in failed')
      if (body.user.role !== 'admin') throw new Error('This account is not an administrator')
      token = body.accessToken
      $('password').value = ''
      $('signin').hidden = true
      $('board').hidden = false
      await poll()
      timer = setInterval(poll, POLL_MS)
    } catch (err) {
      signOut(err.message)
    }
  })
})()
