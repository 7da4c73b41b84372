// Drives a tenant with the real, unchanged @supabase/supabase-js, as an app would:
//
//     node supabase_js.mjs <scenario> <url> <anon key> <service key>
//
// run by test_supabase_js.py. Every client call's outcome ({data, error, status, count})
// is printed as one JSON object, keyed by step name, for the test to assert on; so are
// the HTTP requests the clients made. globalThis.fetch is wrapped before any client is
// made, only to record requests and to refuse any that would leave loopback.
import { createClient } from '@supabase/supabase-js'

const [scenario, url, anonKey, serviceKey] = process.argv.slice(2)
const PASSWORD = 's3cret-enough-pw'
const base = new URL(url)

const requests = []
const realFetch = globalThis.fetch
globalThis.fetch = async (input, init = {}) => {
  const request = new Request(input, init)
  const target = new URL(request.url)
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) {
    requests.push({ method: request.method, url: request.url, refused: true })
    throw new Error(`test: no network beyond loopback (${request.url})`)
  }
  const response = await realFetch(input, init)
  requests.push({
    method: request.method,
    path: target.pathname.slice(base.pathname.length) + target.search,
    status: response.status,
    prefer: request.headers.get('prefer'),
    clientInfo: request.headers.get('x-client-info'),
  })
  return response
}

const results = {}
const plainError = (e) => e && {
  name: e.name, message: e.message, code: e.code, status: e.status, details: e.details, hint: e.hint,
}

// Records the outcome of one client call under `name`; answers its data.
async function step(name, call) {
  let outcome
  try {
    outcome = await call
  } catch (e) {
    results[name] = { thrown: plainError(e) }
    return undefined
  }
  const { data, error, status, count } = outcome
  results[name] = { data: data ?? null, error: plainError(error), status: status ?? null, count: count ?? null }
  return data
}

const newClient = (key) => createClient(url, key)

async function todo() {
  const ann = newClient(anonKey)
  const signedUp = await step('signUp', ann.auth.signUp({ email: 'ann@example.com', password: PASSWORD,
    options: { data: { name: 'Ann' } } }))
  await step('signInWithPassword', ann.auth.signInWithPassword({ email: 'ann@example.com', password: PASSWORD }))
  await step('getUser', ann.auth.getUser())
  await step('getSession', ann.auth.getSession())

  const milk = await step('insert', ann.from('Todo').insert({ title: 'Milk', due: '2030-01-02' }).select())
  await step('insertMany', ann.from('Todo').insert([{ title: 'Bread' }, { title: 'Apples', done: true }])
    .select('id, title, done'))
  await step('insertMinimal', ann.from('Todo').insert({ title: 'Zucchini' }))
  await step('insertCount', ann.from('Todo').insert({ title: 'Eggs' }, { count: 'exact' }).select('title'))
  await step('selectFiltered', ann.from('Todo').select('title, done').eq('done', false)
    .order('title', { ascending: true }).limit(3))
  await step('selectMultiline', ann.from('Todo').select(`
      id,
      label: title,
      done
    `).in('title', ['Milk', 'Apples']).order('title', { ascending: false }))
  await step('selectOr', ann.from('Todo').select('title').or('done.eq.true,title.ilike.m*').order('title'))
  await step('selectNot', ann.from('Todo').select('title').not('due', 'is', null))
  await step('selectRange', ann.from('Todo').select('title').order('title').range(1, 2))
  await step('count', ann.from('Todo').select('*', { count: 'exact', head: true }))
  await step('single', ann.from('Todo').select('title, owner').eq('id', milk?.[0]?.id).single())
  await step('maybeSingleNone', ann.from('Todo').select().eq('title', 'nothing').maybeSingle())
  await step('update', ann.from('Todo').update({ done: true }).eq('id', milk?.[0]?.id).select())
  await step('upsert', ann.from('Todo').upsert({ id: milk?.[0]?.id, title: 'Oat milk', done: false }).select('title, done'))
  await step('delete', ann.from('Todo').delete().eq('title', 'Bread').select('title'))
  await step('deleteMinimal', ann.from('Todo').delete().eq('title', 'Zucchini'))
  await step('afterWrites', ann.from('Todo').select('title, done').order('title'))
  await step('invalid', ann.from('Todo').insert({ title: '' }).select())
  await step('unknownColumn', ann.from('Todo').select('nope'))

  const bob = newClient(anonKey)
  await step('bobSignUp', bob.auth.signUp({ email: 'bob@example.com', password: PASSWORD }))
  await step('bobSelect', bob.from('Todo').select('*'))
  await step('bobUpdate', bob.from('Todo').update({ title: 'mine now' }).eq('id', milk?.[0]?.id).select())
  await step('bobDelete', bob.from('Todo').delete().eq('id', milk?.[0]?.id).select())
  await step('bobInsertForAnn', bob.from('Todo').insert({ title: 'forged', owner: signedUp?.user?.id }).select())

  await step('signOut', ann.auth.signOut())
  await step('afterSignOutGetSession', ann.auth.getSession())
  await step('afterSignOutSelect', ann.from('Todo').select('*'))
  await step('wrongPassword', newClient(anonKey).auth.signInWithPassword({ email: 'ann@example.com',
    password: 'not-the-password' }))
}

async function shop() {
  const service = newClient(serviceKey)
  await step('createStaff', service.auth.admin.createUser({ email: 'staff@example.com', password: PASSWORD,
    email_confirm: true, app_metadata: { role: 'staff' } }))
  const staff = newClient(anonKey)
  await step('staffSignIn', staff.auth.signInWithPassword({ email: 'staff@example.com', password: PASSWORD }))

  const cust = newClient(anonKey)
  const signedUp = await step('customerSignUp', cust.auth.signUp({ email: 'cara@example.com', password: PASSWORD }))
  const customer = await step('createCustomer', staff.from('Customer').insert({ account: signedUp?.user?.id,
    name: 'Cara', email: 'cara@example.com', credit_limit: '100.00' }).select().single())
  await step('createProductsService', service.from('Product').insert([
    { sku: 'W-1', title: 'Blue widget', price: '12.50', stock: 10 },
    { sku: 'G-1', title: 'Golden gadget', description: 'very shiny', price: '60', stock: 5 },
  ]).select('id, sku, price, stock'))
  await step('upsertProductStaff', staff.from('Product').upsert({ sku: 'W-1', title: 'Blue widget', price: '12.50',
    stock: 20 }, { onConflict: 'sku' }).select('sku, stock'))
  const products = await step('products', cust.from('Product').select('id, sku, price').order('sku'))
  const widget = products?.find((p) => p.sku === 'W-1')
  const gadget = products?.find((p) => p.sku === 'G-1')
  await step('textSearch', cust.from('Product').select('sku').textSearch('title', 'widget'))
  await step('customerCreateProduct', cust.from('Product').insert({ sku: 'X', title: 'x', price: 1 }).select())

  const order = await step('insertOrder', cust.from('Order').insert({ customer: customer?.id }).select().single())
  await step('addToOrder', cust.rpc('add_to_order', { order: order?.id, product: widget?.id, quantity: 2 }))
  await step('embedAlias', cust.from('Order').select('*, customer(name), lines:OrderLine(*)').eq('id', order?.id))
  await step('embedRelatedName', cust.from('Order').select(`
      id, total, status,
      customer ( name, credit_limit ),
      lines ( quantity, unit_price, product ( sku ) )
    `).single())
  await step('place', cust.rpc('Order.place', { id: order?.id }))
  await step('refusedRpc', cust.rpc('Order.pay', { id: order?.id }))
  await step('refusedAction', cust.rpc('add_to_order', { order: order?.id, product: widget?.id, quantity: 1 }))
  await step('staffPay', staff.rpc('Order.pay', { id: order?.id }))

  // a second order above the credit limit: placing it breaks within_credit_limit
  const second = await step('insertSecondOrder', cust.from('Order').insert({ customer: customer?.id }).select('id').single())
  await step('addGadgets', cust.rpc('add_to_order', { order: second?.id, product: gadget?.id, quantity: 2 }))
  await step('placeOverLimit', cust.rpc('Order.place', { id: second?.id }))
  // a total that disagrees with the lines breaks order_total_matches_lines (service key: no access rules)
  await step('serviceBreaksTotal', service.from('Order').update({ total: '1.00' }).eq('id', second?.id).select())
  await step('ordersAfter', cust.from('Order').select('status, total, lines(quantity)').order('created_at'))
  await step('stockAfter', staff.from('Product').select('sku, stock').order('sku'))
  await step('embedOrderLimit', cust.from('Order').select('status, lines(quantity, unit_price)')
    .order('quantity', { referencedTable: 'lines', ascending: false }).limit(1, { referencedTable: 'lines' })
    .order('created_at'))
  await step('innerFilter', staff.from('Order').select('status, customer!inner(name)').eq('customer.name', 'Cara')
    .match({ status: 'paid' }))
  await step('filterIlike', cust.from('Product').select('sku').filter('title', 'ilike', '%GADGET%'))
  await step('ignoreDuplicates', staff.from('Product').upsert({ sku: 'W-1', title: 'ignored', price: 1 },
    { onConflict: 'sku', ignoreDuplicates: true }).select('sku, title'))
  await step('missingDefault', staff.from('Product').insert([{ sku: 'N-1', title: 'New', price: 3 },
    { sku: 'N-2', title: 'Newer', price: 4, stock: 2 }], { defaultToNull: false }).select('sku, stock'))
  await step('insertSingle', staff.from('Product').insert({ sku: 'S-1', title: 'Single', price: 1 })
    .select('sku').single())
  await step('rpcGet', cust.rpc('add_to_order', { order: second?.id, product: widget?.id, quantity: 1 }, { get: true }))
  await step('rpcCount', cust.rpc('add_to_order', { order: second?.id, product: widget?.id, quantity: 1 },
    { count: 'exact' }))
  await step('selectCountExact', cust.from('Product').select('sku', { count: 'exact' }).order('sku').limit(1))
  await step('emptyRpcName', cust.rpc('no_such_action', {}))
}

const scenarios = { todo, shop }
if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(', ')}`)
  process.exit(2)
}
await scenarios[scenario]()
console.log(JSON.stringify({ results, requests }))
// auth-js may keep a token-refresh timer; this run is over
process.exit(0)
