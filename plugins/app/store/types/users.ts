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
  /** Removes the user and everything the user owns; audit events stay, anonymised. */
  deleteUser (id: string): Promise<boolean>
}
