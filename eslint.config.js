import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist/**', 'clients/node/dist/**', 'data/**', 'bench/results/**', 'test/artifacts/**', 'coverage/**'],
  env: ['browser']
})
