export { Keyward, type Api, type Input, type KeywardOptions, type OperationId, type Output } from './client.ts'
export { KeywardError, UNREACHABLE } from './errors.ts'
export type { components, operations, paths } from './generated/openapi.ts'
export type { VerifyCacheOptions, VerifyCode, VerifyOptions, VerifyResult } from './verify.ts'
