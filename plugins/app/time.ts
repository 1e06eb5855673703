/** A time as the API writes it (ISO 8601, UTC) from epoch milliseconds; a missing time stays null. */
export function iso (ms: number): string
export function iso (ms: number | null): string | null
export function iso (ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString()
}
