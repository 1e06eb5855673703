import type { KeyRecord, KeySortField } from './types.ts'

/** The lower-cased text that `q` searches: name, service, description and tags. */
export function searchText (key: Pick<KeyRecord, 'name' | 'service' | 'description' | 'tags'>): string {
  return [key.name, key.service ?? '', key.description ?? '', ...key.tags].join('\n').toLowerCase()
}

/** The value a key sorts by, as both adapters compare it (a missing time sorts lowest). */
export function sortValue (key: KeyRecord, field: KeySortField): string | number | null {
  return key[field]
}
