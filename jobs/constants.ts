/** Rows per batch: no job ever loads a whole collection into memory. */
export const BATCH = 500
export const DAY_MS = 86_400_000
