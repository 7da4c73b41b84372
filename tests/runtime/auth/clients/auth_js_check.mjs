// Drives a running tenant with supabase-js's auth client (@supabase/auth-js); run by
// test_clients.py: `node auth_js_check.mjs URL ANON SERVICE` with NODE_PATH at its node_modules.
import { createRequire } from 'node:module'
const require = createRequire(process.env.NODE_PATH + '/')
const { AuthClient } = require('@supabase/auth-js')

const [url, anon, service] = process.argv.slice(2)
const PASSWORD = 's3cret-enough-pw'
const client = (key) => new AuthClient({
  url: `${url}/auth/v1`, headers: { apikey: key, Authorization: `Bearer ${key}` },
  autoRefreshToken: false, persistSession: true, storage: memoryStorage(),
})
function memoryStorage() {
  const m = new Map()
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v), removeItem: (k) => m.delete(k) }
}
function check(cond, what) { if (!cond) { console.error('FAILED:', what); process.exit(1) } }

const auth = client(anon)
let r = await auth.signUp({ email: 'js@example.com', password: PASSWORD, options: { data: { n: 1 } } })
check(!r.error && r.data.session && r.data.user.email === 'js@example.com', ['signUp', r.error])
check(r.data.user.identities.length === 1, 'identities')
r = await auth.signInWithPassword({ email: 'js@example.com', password: PASSWORD })
check(!r.error && r.data.session.access_token && r.data.user.role === 'member', ['signIn', r.error])
const first = r.data.session
r = await auth.getUser()
check(!r.error && r.data.user.id === first.user.id, ['getUser', r.error])
r = await auth.refreshSession()
check(!r.error && r.data.session.refresh_token !== first.refresh_token, ['refreshSession', r.error])
r = await auth.updateUser({ data: { n: 2 } })
check(!r.error && r.data.user.user_metadata.n === 2, ['updateUser', r.error])
r = await auth.signOut()
check(!r.error, ['signOut', r.error])
r = await client(anon).signInWithPassword({ email: 'js@example.com', password: 'wrong-password' })
check(r.error && r.error.code === 'invalid_credentials' && r.error.status === 400, ['wrong password', r.error])
r = await client(anon).signUp({ email: 'weak@example.com', password: 'short' })
check(r.error && r.error.code === 'weak_password' && r.error.reasons?.includes('length'), ['weak', r.error])
r = await client(anon).refreshSession({ refresh_token: first.refresh_token })
check(r.error && r.error.code === 'refresh_token_already_used', ['reuse', r.error])

const admin = client(service).admin
r = await admin.createUser({ email: 'staff-js@example.com', password: PASSWORD, email_confirm: true,
  app_metadata: { role: 'member' } })
check(!r.error && r.data.user.app_metadata.role === 'member', ['createUser', r.error])
const id = r.data.user.id
r = await admin.updateUserById(id, { user_metadata: { a: 1 } })
check(!r.error && r.data.user.user_metadata.a === 1, ['updateUserById', r.error])
r = await admin.listUsers({ page: 1, perPage: 1 })
check(!r.error && r.data.users.length === 1 && r.data.total === 2, ['listUsers', r.error, r.data])
r = await admin.deleteUser(id)
check(!r.error, ['deleteUser', r.error])
console.log('auth-js ok')
