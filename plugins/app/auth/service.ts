import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { AppError, notFound } from '../errors.ts'
import type { AuditService } from '../audit/service.ts'
import { auditView } from '../audit/view.ts'
import type { TwoLayerCache } from '../cache/cache.ts'
import type { Clock } from '../clock.ts'
import { keyView } from '../keys/view.ts'
import { listAllKeys, PURGE_BATCH, purgeAccount } from '../store/shared.ts'
import { iso } from '../time.ts'
import type { AuditInput, AuditStore, KeysStore, Role, SessionRecord, SessionsStore, UserRecord, UsersStore } from '../store/types/index.ts'
import type { ScryptParams } from '../kdf.ts'
import { hashPassword, needsRehash, verifyPassword } from './passwords.ts'
import { sessionView } from './view.ts'
import type { Static } from 'typebox'
import type { ChangePasswordBody, LoginBody, RegisterBody, UpdateMeBody } from '../../../schemas/auth.ts'

/** What an access token carries. `typ` keeps other tokens signed with the same secret out. */
export interface AccessClaims {
  sub: string
  role: Role
  sid: string
  typ: 'access'
  /** Unique per token, so two tokens issued in one second differ. */
  jti: string
  iat: number
  exp?: number
}

/** The authenticated caller of a request. */
export interface Principal {
  id: string
  role: Role
  sessionId: string
  /** When the access token expires (epoch ms). */
  expiresAt: number
}

export interface RequestContext {
  ip: string | null
  userAgent: string | null
}

export interface PublicUser {
  id: string
  email: string
  name: string | null
  role: Role
  createdAt: string
  updatedAt: string
}

export interface TokenPair {
  /** The session the pair belongs to (not serialised: the access token carries it). */
  sessionId: string
  /** When that session ends (epoch ms; not serialised): the console's refresh cookie lives as long. */
  sessionExpiresAt: number
  tokenType: 'Bearer'
  accessToken: string
  refreshToken: string
  expiresIn: number
  user: PublicUser
}

export interface AuthDependencies {
  store: UsersStore & SessionsStore & KeysStore & AuditStore
  cache: TwoLayerCache
  clock: Clock
  /** The account export includes the audit trail. */
  audit: AuditService
  signAccess (claims: AccessClaims, expiresInSeconds: number): string
  /** Checks the signature and algorithm only; expiry is checked here against the clock. */
  verifyAccess (token: string): AccessClaims
  accessTtlSeconds: number
  refreshTtlSeconds: number
  adminEmails: string[]
  passwordParams: ScryptParams
}

/**
 * How long a process trusts what it read of a session and its account's role. Revocations also
 * bump the cache generation (at once through Redis or the cluster primary), but a change made by
 * another process without either (the admin command, PM2 without Redis) is seen within this.
 */
const SESSION_CACHE_TTL_MS = 1000
const EMAIL = /^[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/

export function normaliseEmail (raw: string): string {
  const email = raw.trim().toLowerCase()
  if (email.length > 254 || !EMAIL.test(email)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'body/email must be an email address')
  }
  return email
}

export function hashRefreshToken (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

function newRefreshToken (): string {
  return 'rt_' + randomBytes(32).toString('base64url')
}

export function publicUser (user: UserRecord): PublicUser {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    role: user.role,
    createdAt: new Date(user.createdAt).toISOString(),
    updatedAt: new Date(user.updatedAt).toISOString()
  }
}

const invalidCredentials = () => new AppError(401, 'INVALID_CREDENTIALS', 'Email or password is wrong')
const wrongPassword = () => new AppError(403, 'WRONG_PASSWORD', 'The password is wrong')

/** Accounts, sessions and tokens: plain TypeScript over the Store, used by the auth routes and tests. */
export class AuthService {
  private readonly dummyHash: Promise<string>
  private readonly accountDeletedListeners: Array<(userId: string, keyHashes: string[]) => Promise<void>> = []

  /** How long a password check at the current parameters takes here (moving average, ms). */
  private checkMs = 0

  /**
   * Per connection, the last access token whose signature was checked and its claims. It holds
   * the token for the connection's life, as the request's own parsed headers do.
   */
  private readonly verifiedOn = new WeakMap<object, { token: string, claims: AccessClaims }>()

  constructor (private readonly deps: AuthDependencies) {
    // Unknown emails are checked against this hash so they cost the same time as known ones.
    const started = performance.now()
    this.dummyHash = hashPassword(randomBytes(16).toString('hex'), deps.passwordParams)
    this.dummyHash.then(() => this.observeCheck(performance.now() - started), () => {})
  }

  private observeCheck (ms: number) {
    this.checkMs = this.checkMs === 0 ? ms : 0.8 * this.checkMs + 0.2 * ms
  }

  /** Appends a security event to the user's audit trail. */
  /** Runs after an account is deleted, with the lookup hashes its keys had (caches forget them). */
  onAccountDeleted (listener: (userId: string, keyHashes: string[]) => Promise<void>) {
    this.accountDeletedListeners.push(listener)
  }

  private async record (userId: string, input: AuditInput) {
    await this.deps.store.appendAudit(userId, input)
  }

  private checkPasswordPolicy (password: string, email: string) {
    if (password.trim().toLowerCase() === email) {
      throw new AppError(400, 'WEAK_PASSWORD', 'The password must not be the email address')
    }
  }

  private async issueTokens (user: UserRecord, ctx: RequestContext, session?: SessionRecord, refreshToken?: string): Promise<TokenPair> {
    const now = this.deps.clock.now()
    let token = refreshToken
    if (session === undefined) {
      token = newRefreshToken()
      session = await this.deps.store.createSession({
        userId: user.id,
        expiresAt: now + this.deps.refreshTtlSeconds * 1000,
        userAgent: ctx.userAgent?.slice(0, 256) ?? null,
        ip: ctx.ip
      }, hashRefreshToken(token))
    }
    const accessToken = this.deps.signAccess(
      { sub: user.id, role: user.role, sid: session.id, typ: 'access', jti: randomBytes(9).toString('base64url'), iat: Math.floor(now / 1000) },
      this.deps.accessTtlSeconds
    )
    return { tokenType: 'Bearer', accessToken, refreshToken: token as string, expiresIn: this.deps.accessTtlSeconds, user: publicUser(user), sessionId: session.id, sessionExpiresAt: session.expiresAt }
  }

  /** ADMIN_EMAILS promotes at registration only, so `admin demote` sticks; later promotions use the admin command. */
  private async promoteIfListed (user: UserRecord, ip: string | null): Promise<UserRecord> {
    if (user.role === 'admin' || !this.deps.adminEmails.includes(user.email)) return user
    const promoted = await this.deps.store.updateUser(user.id, { role: 'admin' }, { action: 'auth.role_changed', ip, detail: { role: 'admin', via: 'ADMIN_EMAILS' } })
    return promoted ?? user
  }

  async register (input: Static<typeof RegisterBody>, ctx: RequestContext): Promise<TokenPair> {
    const email = normaliseEmail(input.email)
    this.checkPasswordPolicy(input.password, email)
    const passwordHash = await hashPassword(input.password, this.deps.passwordParams)
    let user: UserRecord
    try {
      user = await this.deps.store.createUser({ email, name: input.name?.trim() || null, role: 'user', passwordHash })
    } catch (err) {
      if ((err as Error).name === 'DuplicateError') throw new AppError(409, 'EMAIL_TAKEN', 'That email is already registered')
      throw err
    }
    await this.record(user.id, { action: 'auth.register', ip: ctx.ip })
    user = await this.promoteIfListed(user, ctx.ip)
    return this.issueTokens(user, ctx)
  }

  async login (input: Static<typeof LoginBody>, ctx: RequestContext): Promise<TokenPair> {
    let email: string | null
    try {
      email = normaliseEmail(input.email)
    } catch {
      email = null
    }
    const started = performance.now()
    const user = email === null ? null : await this.deps.store.findUserByEmail(email)
    const stored = user?.passwordHash ?? await this.dummyHash
    const ok = await verifyPassword(input.password, stored)
    if (!needsRehash(stored, this.deps.passwordParams)) this.observeCheck(performance.now() - started)
    if (user === null || !ok) {
      if (user !== null) await this.record(user.id, { action: 'auth.login_failed', ip: ctx.ip })
      // A failure answers no sooner than a check at the current cost would: an account hashed at an
      // older cost, or the audit write of a known email, must not tell a known email from an unknown one.
      const left = started + this.checkMs - performance.now()
      if (left > 0) await sleep(left)
      throw invalidCredentials()
    }
    let current = user
    if (needsRehash(user.passwordHash, this.deps.passwordParams)) {
      current = await this.deps.store.updateUser(user.id, { passwordHash: await hashPassword(input.password, this.deps.passwordParams) }) ?? user
    }
    const tokens = await this.issueTokens(current, ctx)
    await this.record(user.id, { action: 'auth.login', ip: ctx.ip, sessionId: tokens.sessionId })
    return tokens
  }

  async refresh (refreshToken: string, ctx: RequestContext): Promise<TokenPair> {
    const next = newRefreshToken()
    const session = await this.consumeRefreshToken(refreshToken, next, ctx)
    const user = await this.deps.store.getUser(session.userId)
    if (user === null) throw new AppError(401, 'INVALID_REFRESH_TOKEN', 'The refresh token is invalid or expired')
    return this.issueTokens(user, ctx, session, next)
  }

  /** Spends a refresh token (replaced by `next`) and returns its session; a reused one revokes the session. Throws 401. */
  private async consumeRefreshToken (refreshToken: string, next: string, ctx: RequestContext): Promise<SessionRecord> {
    const outcome = await this.deps.store.rotateRefreshToken(hashRefreshToken(refreshToken), hashRefreshToken(next), this.deps.clock.now())
    if (outcome.status === 'reused') {
      await this.forgetSessions(outcome.session.userId)
      await this.record(outcome.session.userId, { action: 'auth.refresh_reused', sessionId: outcome.session.id, ip: ctx.ip })
      throw new AppError(401, 'REFRESH_TOKEN_REUSED', 'This refresh token was already used; the session has been revoked')
    }
    if (outcome.status === 'invalid') throw new AppError(401, 'INVALID_REFRESH_TOKEN', 'The refresh token is invalid or expired')
    return outcome.session
  }

  private sessionScope (userId: string) {
    return `sessions:${userId}`
  }

  /** Drops every cached session state of the user, in every process. */
  private async forgetSessions (userId: string) {
    await this.deps.cache.bumpGeneration(this.sessionScope(userId))
  }

  /**
   * The caller of an access token, or a 401: signature, claims and expiry, then its session (re-read at
   * least every second). `connection` (the request's socket) lets a keep-alive connection that
   * presents the same token again skip the signature check, which never changes for a token.
   */
  async authenticate (token: string, connection?: object): Promise<Principal> {
    const claims = this.claimsOf(token, connection)
    if (claims.typ !== 'access' || typeof claims.sub !== 'string' || typeof claims.sid !== 'string') {
      throw new AppError(401, 'INVALID_TOKEN', 'The access token is invalid')
    }
    const now = this.deps.clock.now()
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= now) {
      throw new AppError(401, 'TOKEN_EXPIRED', 'The access token has expired; refresh it')
    }
    const state = await this.sessionState(claims.sub, claims.sid)
    if (state.expiresAt <= now) {
      throw new AppError(401, 'SESSION_REVOKED', 'The session of this token has ended')
    }
    // The role is the account's current one, so a demotion applies at once, not at token expiry.
    return { id: claims.sub, role: state.role, sessionId: claims.sid, expiresAt: claims.exp * 1000 }
  }

  private claimsOf (token: string, connection: object | undefined): AccessClaims {
    const known = connection === undefined ? undefined : this.verifiedOn.get(connection)
    if (known !== undefined && known.token === token) return known.claims
    let claims: AccessClaims
    try {
      claims = this.deps.verifyAccess(token)
    } catch {
      throw new AppError(401, 'INVALID_TOKEN', 'The access token is invalid')
    }
    if (connection !== undefined) this.verifiedOn.set(connection, { token, claims })
    return claims
  }

  private async sessionState (userId: string, sessionId: string): Promise<{ expiresAt: number, role: Role }> {
    const gen = await this.deps.cache.generation(this.sessionScope(userId))
    return this.deps.cache.get(`session:${userId}:${gen}:${sessionId}`, async () => {
      const [session, user] = await Promise.all([this.deps.store.getSession(userId, sessionId), this.deps.store.getUser(userId)])
      const live = session !== null && session.revokedAt === null && user !== null
      return { expiresAt: live ? session.expiresAt : 0, role: user?.role ?? 'user' }
    }, { ttlMs: SESSION_CACHE_TTL_MS })
  }

  async logout (principal: Principal, ctx: RequestContext) {
    await this.endSession(principal.id, principal.sessionId, ctx)
  }

  async logoutAll (principal: Principal, ctx: RequestContext): Promise<number> {
    return this.endEverySession(principal.id, principal.sessionId, ctx)
  }

  private async endSession (userId: string, sessionId: string, ctx: RequestContext) {
    await this.deps.store.revokeSession(userId, sessionId, this.deps.clock.now(), { action: 'auth.logout', sessionId, ip: ctx.ip })
    await this.forgetSessions(userId)
  }

  private async endEverySession (userId: string, sessionId: string, ctx: RequestContext): Promise<number> {
    const count = await this.deps.store.revokeSessions(userId, this.deps.clock.now(), undefined, { action: 'auth.logout_all', sessionId, ip: ctx.ip })
    await this.forgetSessions(userId)
    return count
  }

  /**
   * Sign-out for a client that holds only a refresh token (the console's cookie): the exchange
   * finds its session with the same rotation and reuse detection as refresh. A token that is
   * unknown, used or expired ends nothing further and is not an error: signing out is idempotent.
   */
  async logoutWithRefreshToken (refreshToken: string, everywhere: boolean, ctx: RequestContext) {
    let session: SessionRecord
    try {
      // Spent, not exchanged: no access token is signed for a session about to end.
      session = await this.consumeRefreshToken(refreshToken, newRefreshToken(), ctx)
    } catch (err) {
      if (err instanceof AppError && err.statusCode === 401) return
      throw err
    }
    if (everywhere) await this.endEverySession(session.userId, session.id, ctx)
    else await this.endSession(session.userId, session.id, ctx)
  }

  async me (principal: Principal): Promise<UserRecord> {
    const user = await this.deps.store.getUser(principal.id)
    if (user === null) throw notFound('User')
    return user
  }

  async updateMe (principal: Principal, patch: Static<typeof UpdateMeBody>): Promise<UserRecord> {
    const user = await this.deps.store.updateUser(principal.id, { name: patch.name?.trim() || null })
    if (user === null) throw notFound('User')
    return user
  }

  async changePassword (principal: Principal, input: Static<typeof ChangePasswordBody>, ctx: RequestContext) {
    const user = await this.me(principal)
    if (!(await verifyPassword(input.currentPassword, user.passwordHash))) throw wrongPassword()
    this.checkPasswordPolicy(input.newPassword, user.email)
    await this.deps.store.updateUser(user.id, { passwordHash: await hashPassword(input.newPassword, this.deps.passwordParams) },
      { action: 'auth.password_changed', sessionId: principal.sessionId, ip: ctx.ip })
    await this.deps.store.revokeSessions(user.id, this.deps.clock.now(), principal.sessionId,
      { action: 'auth.other_sessions_revoked', sessionId: principal.sessionId, ip: ctx.ip })
    await this.forgetSessions(user.id)
  }

  async deleteAccount (principal: Principal, password: string, ctx: RequestContext) {
    const user = await this.me(principal)
    if (!(await verifyPassword(password, user.passwordHash))) throw wrongPassword()
    await this.record(user.id, { action: 'auth.account_deleted', ip: ctx.ip })
    const hashes: string[] = []
    for (const key of await listAllKeys(this.deps.store, user.id)) {
      for (const version of await this.deps.store.listKeyVersions(user.id, key.id)) {
        if (version.hash !== null) hashes.push(version.hash)
      }
    }
    await this.deps.store.markUserDeleted(user.id, this.deps.clock.now())
    await this.forgetSessions(user.id)
    for (const listener of this.accountDeletedListeners) await listener(user.id, hashes)
    // The account is already gone for every reader; a purge stopped here is resumed by the data-cleanup job.
    await purgeAccount(this.deps.store, user.id, PURGE_BATCH).catch(() => 0)
  }

  async sessions (principal: Principal): Promise<SessionRecord[]> {
    return this.deps.store.listSessions(principal.id)
  }

  /** Everything the account owns, as metadata: never secrets, hashes or ciphertext. */
  async exportAccount (principal: Principal) {
    const [user, sessions, keys, audit] = await Promise.all([
      this.me(principal), this.sessions(principal), listAllKeys(this.deps.store, principal.id), this.deps.audit.all(principal.id)
    ])
    return {
      exportedAt: iso(this.deps.clock.now()),
      user: publicUser(user),
      sessions: sessions.map((s) => sessionView(s, principal.sessionId)),
      keys: keys.map(keyView),
      audit: audit.map(auditView)
    }
  }

  async revokeOwnSession (principal: Principal, sessionId: string, ctx: RequestContext) {
    if (!(await this.deps.store.revokeSession(principal.id, sessionId, this.deps.clock.now(), { action: 'auth.session_revoked', sessionId, ip: ctx.ip }))) {
      const exists = await this.deps.store.getSession(principal.id, sessionId)
      if (exists === null) throw notFound('Session')
      return
    }
    await this.forgetSessions(principal.id)
  }

  /** Sets a user's role by email (the admin command). */
  async setRole (email: string, role: Role): Promise<UserRecord> {
    const user = await this.deps.store.findUserByEmail(normaliseEmail(email))
    if (user === null) throw notFound('User')
    if (user.role === role) return user
    const updated = await this.deps.store.updateUser(user.id, { role }, { action: 'auth.role_changed', ip: null, detail: { role, via: 'admin command' } })
    await this.forgetSessions(user.id)
    return updated ?? user
  }
}
