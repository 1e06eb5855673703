// Kubernetes manifests under k8s/: every document is validated offline against the Kubernetes
// OpenAPI schemas as compiled into the `kubernetes-models` package (v4.5.x, Kubernetes 1.33 API),
// then the deployment properties Keyward relies on are checked.
//
// The schemas check types, required fields and formats (quantities, int-or-string) but, like the
// API server's own OpenAPI schemas, they allow unknown fields; a misspelt field that matters
// (readinessProbe, preStop, ...) is caught by the property checks below instead.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { parseAllDocuments } from 'yaml'
import { ConfigMap, Secret, Service, type IContainer, type IPodSpec, type IProbe } from 'kubernetes-models/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { createConfig } from '../../config.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const K8S_DIR = join(ROOT, 'k8s')

/** The app's graceful shutdown bound (SHUTDOWN_TIMEOUT_MS default) and the worker's extra allowance. */
const DEFAULT_SHUTDOWN_MS = 10_000
const WORKER_EXTRA_MS = 20_000

interface ModelClass {
  apiVersion: string
  kind: string
  new (data?: never): { validate (): void }
}

/** Every kind the manifests may use. A new kind must be added here to be validated. */
const MODELS: ModelClass[] = [ConfigMap, Secret, Service, Deployment, HorizontalPodAutoscaler, PodDisruptionBudget]

interface Manifest {
  file: string
  index: number
  doc: Record<string, unknown> & { apiVersion?: unknown, kind?: unknown, metadata?: { name?: unknown } }
}

function loadManifests (): Manifest[] {
  const files = readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f)).sort()
  const out: Manifest[] = []
  for (const file of files) {
    // Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml), so parse them the same way.
    const docs = parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8'), { version: '1.1' })
    assert.ok(Array.isArray(docs), `${file}: no YAML documents`)
    docs.forEach((d, index) => {
      assert.deepEqual(d.errors.map((e) => e.message), [], `${file} #${index}: YAML errors`)
      assert.deepEqual(d.warnings.map((e) => e.message), [], `${file} #${index}: YAML warnings`)
      const doc = d.toJS() as unknown
      if (doc === null || doc === undefined) return // an empty document (e.g. a trailing ---)
      assert.ok(typeof doc === 'object' && !Array.isArray(doc), `${file} #${index}: not a mapping`)
      out.push({ file, index, doc: doc as Manifest['doc'] })
    })
  }
  return out
}

/** Validates one manifest against the schema of its apiVersion and kind; throws on any error. */
function validateManifest (doc: Record<string, unknown>): void {
  const Model = MODELS.find((m) => m.apiVersion === doc.apiVersion && m.kind === doc.kind)
  if (Model === undefined) throw new Error(`no schema registered for ${String(doc.apiVersion)} ${String(doc.kind)}`)
  new Model(doc as never).validate()
}

const manifests = loadManifests()

function find (kind: string, name: string): Record<string, unknown> {
  const found = manifests.filter((m) => m.doc.kind === kind && m.doc.metadata?.name === name)
  assert.equal(found.length, 1, `exactly one ${kind} ${name} under k8s/`)
  return structuredClone(found[0]!.doc)
}

const apiDeployment = () => new Deployment(find('Deployment', 'keyward-api') as never)
const workerDeployment = () => new Deployment(find('Deployment', 'keyward-worker') as never)

function podSpec (d: Deployment): IPodSpec {
  const spec = d.spec?.template.spec
  assert.ok(spec, `${d.metadata?.name}: pod template has a spec`)
  return spec
}

function onlyContainer (d: Deployment): IContainer {
  const { containers } = podSpec(d)
  assert.equal(containers.length, 1, `${d.metadata?.name}: one container per pod`)
  return containers[0]!
}

function podLabels (d: Deployment): Record<string, string> {
  return d.spec?.template.metadata?.labels ?? {}
}

/** matchLabels semantics; matchExpressions are not used by these manifests. */
function selects (selector: { matchLabels?: Record<string, string>, matchExpressions?: unknown[] } | undefined, labels: Record<string, string>): boolean {
  assert.ok(selector, 'a selector is set')
  assert.equal(selector.matchExpressions, undefined, 'only matchLabels selectors are expected')
  const wanted = Object.entries(selector.matchLabels ?? {})
  assert.ok(wanted.length > 0, 'an empty selector would select every pod')
  return wanted.every(([k, v]) => labels[k] === v)
}

/** Resolves a probe's or Service's port (a number or a container port name) to a number. */
function resolvePort (container: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port
  return container.ports?.find((p) => p.name === port)?.containerPort
}

const QUANTITY_SUFFIX: Record<string, number> = {
  '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40
}

/** Kubernetes resource quantity ("250m", "1", "512Mi", "1Gi") as a number. */
function quantity (value: string | number | undefined): number {
  assert.ok(value !== undefined, 'quantity is set')
  if (typeof value === 'number') return value
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(value)
  const factor = m === null ? undefined : QUANTITY_SUFFIX[m[2]!]
  assert.ok(m !== null && factor !== undefined, `unsupported quantity "${value}"`)
  return Number(m[1]) * factor
}

function httpGetHealth (container: IContainer, probe: IProbe | undefined, name: string) {
  assert.ok(probe, `${name} is set`)
  assert.ok(probe.httpGet, `${name} uses httpGet`)
  assert.equal(probe.httpGet.path, '/api/health', `${name} path`)
  assert.equal(resolvePort(container, probe.httpGet.port), 8080, `${name} port is the API port`)
  return probe
}

/** Seconds the preStop hook sleeps, from an exec ["sleep", "N"] or the native sleep action. */
function preStopSleepSeconds (container: IContainer): number {
  const preStop = container.lifecycle?.preStop
  assert.ok(preStop, 'lifecycle.preStop is set')
  if (preStop.sleep !== undefined) return preStop.sleep.seconds
  const command = preStop.exec?.command ?? []
  const i = command.indexOf('sleep')
  assert.ok(i >= 0 && command[i + 1] !== undefined, `preStop sleeps (got ${JSON.stringify(command)})`)
  const seconds = Number(command[i + 1])
  assert.ok(Number.isFinite(seconds) && seconds > 0, 'preStop sleep is a positive number of seconds')
  return seconds
}

function configData (): Record<string, string> {
  return new ConfigMap(find('ConfigMap', 'keyward-config') as never).data ?? {}
}

describe('k8s manifests: schema validation', () => {
  it('finds the expected objects, each exactly once', () => {
    const names = manifests.map((m) => `${String(m.doc.kind)}/${String(m.doc.metadata?.name)}`).sort()
    assert.deepEqual(names, [
      'ConfigMap/keyward-config',
      'Deployment/keyward-api',
      'Deployment/keyward-worker',
      'HorizontalPodAutoscaler/keyward-api',
      'PodDisruptionBudget/keyward-api',
      'Secret/keyward-secrets',
      'Service/keyward-api'
    ])
  })

  for (const { file, index, doc } of manifests) {
    it(`${file} #${index} (${String(doc.kind)} ${String(doc.metadata?.name)}) is valid`, () => {
      validateManifest(doc)
    })
  }

  describe('rejects broken manifests', () => {
    it('a Deployment with replicas: "two"', () => {
      const doc = find('Deployment', 'keyward-api') as { spec: { replicas?: unknown } }
      doc.spec.replicas = 'two'
      assert.throws(() => validateManifest(doc), /spec\/replicas must be integer/)
    })

    it('an httpGet probe without a port', () => {
      const doc = find('Deployment', 'keyward-api') as { spec: { template: { spec: { containers: Array<{ readinessProbe: { httpGet: { port?: unknown } } }> } } } }
      delete doc.spec.template.spec.containers[0]!.readinessProbe.httpGet.port
      assert.throws(() => validateManifest(doc), /readinessProbe\/httpGet must have required property '?port'?/)
    })

    it('a container without an image name', () => {
      const doc = find('Deployment', 'keyward-worker') as { spec: { template: { spec: { containers: Array<{ name?: unknown }> } } } }
      delete doc.spec.template.spec.containers[0]!.name
      assert.throws(() => validateManifest(doc), /containers\/0 must have required property '?name'?/)
    })

    it('a malformed resource quantity', () => {
      const doc = find('Deployment', 'keyward-api') as { spec: { template: { spec: { containers: Array<{ resources: { limits: Record<string, unknown> } }> } } } }
      doc.spec.template.spec.containers[0]!.resources.limits.memory = 'one gig'
      assert.throws(() => validateManifest(doc), /resources\/limits\/memory/)
    })

    it('a ConfigMap value that is not a string (an unquoted number)', () => {
      const doc = find('ConfigMap', 'keyward-config') as { data: Record<string, unknown> }
      doc.data.TRUST_PROXY = 1
      assert.throws(() => validateManifest(doc), /data\/TRUST_PROXY must be string/)
    })

    it('an HPA without scaleTargetRef', () => {
      const doc = find('HorizontalPodAutoscaler', 'keyward-api') as { spec: { scaleTargetRef?: unknown } }
      delete doc.spec.scaleTargetRef
      assert.throws(() => validateManifest(doc), /must have required property '?scaleTargetRef'?/)
    })

    it('a kind or apiVersion with no schema', () => {
      assert.throws(() => validateManifest({ ...find('Deployment', 'keyward-api'), apiVersion: 'extensions/v1beta1' }), /no schema registered/)
    })
  })
})

describe('k8s manifests: API Deployment', () => {
  const d = apiDeployment()
  const c = onlyContainer(d)

  it('runs one server.js process per pod from the keyward image, keeping tini as entrypoint', () => {
    assert.match(c.image ?? '', /^keyward(:|@|$)/)
    assert.equal(c.command, undefined, '`command` would replace the tini ENTRYPOINT; use args')
    assert.deepEqual(c.args, ['node', 'dist/server.js'])
    assert.ok(!(c.env ?? []).some((e) => e.name === 'WORKERS'), 'no in-pod cluster: pods scale horizontally')
  })

  it('exposes port 8080', () => {
    assert.deepEqual(c.ports?.map((p) => p.containerPort), [8080])
  })

  it('selector matches the pod template labels', () => {
    assert.ok(selects(d.spec?.selector, podLabels(d)))
  })

  it('has readiness and liveness probes on /api/health, liveness more tolerant', () => {
    const readiness = httpGetHealth(c, c.readinessProbe, 'readinessProbe')
    const liveness = httpGetHealth(c, c.livenessProbe, 'livenessProbe')
    const rFail = readiness.failureThreshold ?? 3
    const lFail = liveness.failureThreshold ?? 3
    assert.ok(lFail > rFail, `liveness failureThreshold (${lFail}) > readiness (${rFail})`)
    const window = (p: IProbe) => (p.periodSeconds ?? 10) * (p.failureThreshold ?? 3)
    assert.ok(window(liveness) > window(readiness), 'liveness waits longer than readiness before acting')
    if (c.startupProbe !== undefined) httpGetHealth(c, c.startupProbe, 'startupProbe')
  })

  it('sets CPU and memory requests and limits, requests <= limits', () => {
    const { requests, limits } = c.resources ?? {}
    for (const r of ['cpu', 'memory']) {
      const req = quantity(requests?.[r])
      const lim = quantity(limits?.[r])
      assert.ok(req > 0 && lim >= req, `${r}: request ${req} <= limit ${lim}`)
    }
  })

  it('drains before shutting down: preStop sleep, then a grace period above sleep + shutdown', () => {
    const sleep = preStopSleepSeconds(c)
    assert.ok(sleep >= 5, 'preStop gives the endpoints time to update')
    const shutdownMs = Number(configData().SHUTDOWN_TIMEOUT_MS ?? DEFAULT_SHUTDOWN_MS)
    const grace = podSpec(d).terminationGracePeriodSeconds ?? 30
    assert.ok(grace > sleep + shutdownMs / 1000, `terminationGracePeriodSeconds ${grace} > ${sleep} + ${shutdownMs / 1000}`)
  })

  it('reads its settings from the ConfigMap and then the Secret', () => {
    assert.deepEqual(c.envFrom?.map((e) => e.configMapRef?.name ?? e.secretRef?.name), ['keyward-config', 'keyward-secrets'])
  })

  it('leaves the replica count to the HPA and never rolls out below capacity', () => {
    assert.equal(d.spec?.replicas, undefined, 'a fixed replicas value would fight the HPA on every apply')
    assert.equal(d.spec?.strategy?.rollingUpdate?.maxUnavailable, 0)
  })
})

describe('k8s manifests: worker Deployment', () => {
  const d = workerDeployment()
  const c = onlyContainer(d)

  it('runs worker.js, serves no ports, reads the same settings', () => {
    assert.equal(c.command, undefined)
    assert.deepEqual(c.args, ['node', 'dist/worker.js'])
    assert.equal(c.ports, undefined)
    assert.deepEqual(c.envFrom?.map((e) => e.configMapRef?.name ?? e.secretRef?.name), ['keyward-config', 'keyward-secrets'])
    assert.ok(configData().REDIS_URL, 'the worker needs REDIS_URL')
  })

  it('gives running jobs longer than the worker\'s own shutdown bound', () => {
    const shutdownMs = Number(configData().SHUTDOWN_TIMEOUT_MS ?? DEFAULT_SHUTDOWN_MS)
    const grace = podSpec(d).terminationGracePeriodSeconds ?? 30
    assert.ok(grace > (shutdownMs + WORKER_EXTRA_MS) / 1000, `terminationGracePeriodSeconds ${grace}`)
  })

  it('sets resources and a selector matching its pods only', () => {
    assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory)
    assert.ok(selects(d.spec?.selector, podLabels(d)))
    assert.ok(!selects(d.spec?.selector, podLabels(apiDeployment())), 'worker selector must not match API pods')
  })
})

describe('k8s manifests: no container runs as root', () => {
  for (const d of [apiDeployment(), workerDeployment()]) {
    it(`${d.metadata?.name}`, () => {
      const pod = podSpec(d)
      const all = [...(pod.initContainers ?? []), ...pod.containers]
      for (const c of all) {
        const sc = c.securityContext ?? {}
        const psc = pod.securityContext ?? {}
        assert.equal(sc.runAsNonRoot ?? psc.runAsNonRoot, true, `${c.name}: runAsNonRoot`)
        // The image's USER is a name (node); runAsNonRoot needs a numeric uid to be enforceable.
        const uid = sc.runAsUser ?? psc.runAsUser
        assert.ok(typeof uid === 'number' && uid > 0, `${c.name}: numeric non-zero runAsUser (got ${uid})`)
        assert.notEqual(sc.runAsGroup ?? psc.runAsGroup, 0, `${c.name}: not in the root group`)
        assert.equal(sc.privileged ?? false, false, `${c.name}: not privileged`)
        assert.equal(sc.allowPrivilegeEscalation, false, `${c.name}: allowPrivilegeEscalation false`)
        assert.equal(sc.readOnlyRootFilesystem, true, `${c.name}: read-only root filesystem`)
        assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${c.name}: drops all capabilities`)
        assert.ok(!(sc.capabilities?.add ?? []).length, `${c.name}: adds no capability`)
      }
    })
  }
})

describe('k8s manifests: Service, HPA and PDB target the API pods', () => {
  const api = apiDeployment()
  const labels = podLabels(api)
  const workerLabels = podLabels(workerDeployment())

  it('the Service selects the API pods only and maps port 80 to 8080', () => {
    const svc = new Service(find('Service', 'keyward-api') as never)
    assert.equal(svc.spec?.type ?? 'ClusterIP', 'ClusterIP')
    const selector = svc.spec?.selector
    assert.ok(selector && Object.keys(selector).length > 0)
    assert.ok(Object.entries(selector).every(([k, v]) => labels[k] === v), 'selects the API pods')
    assert.ok(!Object.entries(selector).every(([k, v]) => workerLabels[k] === v), 'does not select worker pods')
    const ports = svc.spec?.ports ?? []
    assert.equal(ports.length, 1)
    assert.equal(ports[0]!.port, 80)
    assert.equal(resolvePort(onlyContainer(api), ports[0]!.targetPort ?? ports[0]!.port), 8080)
  })

  it('the HPA scales the API Deployment on CPU utilisation, 2 to 20 pods', () => {
    const hpa = new HorizontalPodAutoscaler(find('HorizontalPodAutoscaler', 'keyward-api') as never)
    assert.deepEqual(hpa.spec?.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'keyward-api' })
    assert.equal(hpa.spec?.minReplicas, 2)
    assert.equal(hpa.spec?.maxReplicas, 20)
    const cpu = hpa.spec?.metrics?.find((m) => m.type === 'Resource' && m.resource?.name === 'cpu')
    assert.ok(cpu, 'a CPU Resource metric')
    assert.equal(cpu.resource?.target.type, 'Utilization')
    assert.equal(cpu.resource?.target.averageUtilization, 70)
    // Utilization is relative to the request, so the target container must have one.
    assert.ok(onlyContainer(api).resources?.requests?.cpu)
  })

  it('the PDB selects the API pods only and still allows a drain at minReplicas', () => {
    const pdb = new PodDisruptionBudget(find('PodDisruptionBudget', 'keyward-api') as never)
    assert.ok(selects(pdb.spec?.selector, labels), 'selects the API pods')
    assert.ok(!selects(pdb.spec?.selector, workerLabels), 'does not select worker pods')
    const minAvailable = pdb.spec?.minAvailable
    assert.equal(minAvailable, 1)
    const hpa = new HorizontalPodAutoscaler(find('HorizontalPodAutoscaler', 'keyward-api') as never)
    assert.ok((hpa.spec?.minReplicas ?? 1) > minAvailable, 'minAvailable below minReplicas, or no node could ever be drained')
  })
})

describe('k8s manifests: ConfigMap and example Secret', () => {
  const data = configData()
  const secret = new Secret(find('Secret', 'keyward-secrets') as never)
  const secretData = secret.stringData ?? {}

  it('the example Secret holds only placeholders, never real secrets', () => {
    assert.deepEqual(Object.keys(secretData).sort(), ['JWT_SECRET', 'KEY_HASH_SECRET', 'METRICS_TOKEN'])
    assert.equal(secret.data, undefined, 'no base64 data in the example')
    for (const [k, v] of Object.entries(secretData)) assert.match(v, /^replace-with-/, `${k} is a placeholder`)
  })

  it('together they form a configuration the app accepts in production, once the placeholders are replaced', () => {
    assert.equal(data.NODE_ENV, 'production')
    for (const k of ['LOG_LEVEL', 'TRUST_PROXY', 'MONGODB_URI', 'REDIS_URL']) assert.ok(data[k], `ConfigMap sets ${k}`)
    assert.throws(() => createConfig({ ...data, ...secretData }), /placeholder/, 'the example secret as is refuses to start')
    const replaced = Object.fromEntries(Object.entries(secretData).map(([k, v]) => [k, String(v).startsWith('replace') ? `k8s-${k}-${'x'.repeat(40)}` : v]))
    const config = createConfig({ ...data, ...replaced })
    assert.equal(config.env, 'production')
    assert.ok(config.mongo, 'MongoDB store, not the per-pod SQLite file')
    assert.ok(config.redis, 'Redis configured')
    assert.equal(config.trustProxy, 1)
    assert.equal(config.host, '0.0.0.0', 'every interface of the pod, set in the ConfigMap (Keyward alone listens on loopback)')
  })
})
