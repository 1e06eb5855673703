import { AppError } from '../errors.ts'

const invalidCursor = () => new AppError(400, 'INVALID_CURSOR', 'The cursor is malformed or belongs to another query')

/** An opaque page position bound to the order it was made for. */
export function encodeCursor (order: string, position: { value: string | number | null, id: string }): string {
  return Buffer.from(JSON.stringify([order, position.value, position.id])).toString('base64url')
}

export function decodeCursor (order: string, cursor: string): { value: string | number | null, id: string } {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw invalidCursor()
  }
  if (!Array.isArray(parsed) || parsed.length !== 3 || parsed[0] !== order) throw invalidCursor()
  const [, value, id] = parsed as [string, unknown, unknown]
  if (typeof id !== 'string' || id.length > 64 || !(value === null || typeof value === 'string' || typeof value === 'number')) throw invalidCursor()
  if (typeof value === 'string' && value.length > 200) throw invalidCursor()
  return { value, id }
}
