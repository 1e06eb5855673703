import type { AuditInput } from './audit.ts'

export type Role = 'user' | 'admin'

export interface UserRecord {
  id: string
  email: string
  name: string | null
  role: Role
  passwordHash: string
  createdAt: number
  updatedAt: number
}

export interface NewUser {
  email: string
  name: string | null
  role: Role
  passwordHash: string
}

export type UserPatch = Partial<Pick<UserRecord, 'name' | 'role' | 'passwordHash'>>

export interface UsersStore {
  createUser (user: NewUser): Promise<UserRecord>
  getUser (id: string): Promise<UserRecord | null>
  findUserByEmail (email: string): Promise<UserRecord | null>
  updateUser (id: string, patch: UserPatch, audit?: AuditInput): Promise<UserRecord | null>
  /**
   * Phase one of deleting an account, in one transaction: the user is marked deleted, its email
   * becomes a tombstone (so the address can register again) and its sessions and refresh tokens go.
   * From then on the user is not found, cannot sign in, and its keys no longer resolve as verify
   * credentials. False when there is no such live user.
   */
  markUserDeleted (id: string, now: number): Promise<boolean>
  /**
   * Phase two, one bounded batch outside any transaction: removes up to `limit` rows of a marked
   * account's data; once none is left, anonymises its audit events (the chain still verifies) and
   * removes the user in one short transaction. 0 when nothing is left (or the user is not marked).
   */
  purgeDeletedUser (id: string, limit: number): Promise<number>
  /** Accounts marked deleted whose purge has not finished, oldest mark first. */
  listDeletedUsers (limit: number): Promise<string[]>
  /** Marks the user deleted, then purges everything it owns; audit events stay, anonymised. */
  deleteUser (id: string): Promise<boolean>
}
