import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist/**', 'data/**', 'bench/results/**', 'test/artifacts/**', 'coverage/**'],
  env: ['browser']
})
