import { createHmac } from 'node:crypto'

/** base64url of a JSON value: a JWT segment. */
export function b64url (value: object) {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** A JWT signed with HS256 under any secret (forged or real), with any header. */
export function signHs256 (payload: object, secret: string, header: object = { alg: 'HS256', typ: 'JWT' }) {
  const head = `${b64url(header)}.${b64url(payload)}`
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`
}
