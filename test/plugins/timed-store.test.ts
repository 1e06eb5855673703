import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { timed } from '../../plugins/app/store/timed.ts'

class Ledger {
  readonly kind = 'ledger'
  entries: string[] = []
  async add (entry: string) { this.entries.push(entry); return this.entries.length }
  async fail () { throw new Error('refused') }
  count () { return this.entries.length }
}

describe('timed', () => {
  it('times the named operations, leaves the target untouched and keeps every other member working', async () => {
    const ledger = new Ledger()
    const add = ledger.add
    const seen: Array<[string, number]> = []
    const view = timed(ledger, ['add', 'fail'], (operation) => (seconds) => { seen.push([operation, seconds]) })

    assert.equal(ledger.add, add, 'the target keeps its own methods')
    assert.equal(await view.add('one'), 1)
    await assert.rejects(view.fail(), /refused/)
    assert.deepEqual(seen.map(([operation]) => operation), ['add', 'fail'], 'a failed call is timed too')
    assert.ok(seen.every(([, seconds]) => seconds >= 0 && seconds < 1))

    assert.equal(view.count(), 1, 'an untimed method runs on the target')
    assert.equal(view.kind, 'ledger')
    ledger.entries = ['a', 'b', 'c']
    assert.equal(view.entries.length, 3, 'properties read through to the target')
    const { count } = view
    assert.equal(count(), 3, 'methods are bound to the target')
  })

  it('resolves each operation\'s observer once, not per call', async () => {
    let resolved = 0
    const view = timed(new Ledger(), ['add'], () => { resolved++; return () => {} })
    for (let i = 0; i < 5; i++) await view.add(String(i))
    assert.equal(resolved, 1)
  })
})
