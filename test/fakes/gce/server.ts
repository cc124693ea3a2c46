/**
 * A Compute Engine v1 endpoint for the test suite, speaking the REST paths and JSON that
 * `@google-cloud/compute` 7 sends with `fallback: true`. Stateful (instances, firewall rules
 * and operations exist until deleted), strict where the real API is (names, machine types,
 * images, labels, requestIds), asynchronous (operations go PENDING → RUNNING → DONE on their
 * own; `.../wait` holds until DONE or a while), counted (a call log), and with fault switches.
 * Its instances are backed by real hosts through an InstanceBackend.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseSshKeys, type BackedHost, type InstanceBackend } from './backend.js';

const API = 'https://www.googleapis.com/compute/v1';

export const KNOWN_ZONES = [
  'europe-west1-b', 'europe-west1-c', 'europe-west1-d', 'europe-west4-a', 'europe-west4-b', 'europe-west4-c',
  'us-central1-a', 'us-central1-b', 'us-central1-c', 'us-central1-f', 'us-east1-b', 'us-east1-c', 'us-east1-d',
  'asia-northeast1-a', 'asia-northeast1-b', 'asia-northeast1-c',
];
export const KNOWN_MACHINE_TYPES = ['e2-micro', 'e2-small', 'e2-medium', 'e2-standard-2', 'e2-standard-4', 'n1-standard-1', 'n2-standard-2', 'f1-micro', 'g1-small'];
const DISK_TYPES = ['pd-standard', 'pd-balanced', 'pd-ssd', 'pd-extreme', 'hyperdisk-balanced'];
/** Public image projects and their families. */
const IMAGE_FAMILIES: Record<string, Record<string, string>> = {
  'debian-cloud': { 'debian-12': 'debian-12-bookworm-v20261110', 'debian-11': 'debian-11-bullseye-v20261110' },
  'ubuntu-os-cloud': { 'ubuntu-2204-lts': 'ubuntu-2204-jammy-v20261101', 'ubuntu-2404-lts-amd64': 'ubuntu-2404-noble-amd64-v20261101' },
};

const NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface CallRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  status: number;
  at: number;
}

export interface GceFaults {
  /** Zones whose instance operations end in ZONE_RESOURCE_POOL_EXHAUSTED. */
  exhaustedZones: Set<string>;
  /** instances.insert / bulkInsert answer 403 QUOTA_EXCEEDED. */
  quotaExceeded: boolean;
  /** Every call answers 403: missing scopes (a VM's token) or a missing IAM permission. */
  forbidden?: 'scopes' | 'permission';
  /** The next N calls answer 429 rateLimitExceeded. */
  throttleNext: number;
  /** The next instance operation ends DONE with this error. */
  operationError?: { code: string; message: string };
  /** Insert operations stay RUNNING this much longer after the host has booted. */
  slowOperationsMs: number;
  /** Instances (by name) whose host never answers SSH. */
  sshNeverAnswers: Set<string>;
}

interface OperationRecord {
  resource: Record<string, unknown>;
  done: Promise<void>;
  finish: () => void;
  zone?: string;
}

interface InstanceRecord {
  resource: Record<string, unknown>;
  host?: BackedHost;
  /** Settles when the host's launch ended (either way). */
  launched: Promise<void>;
  deleting: boolean;
}

interface FirewallRecord {
  resource: Record<string, unknown>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const notFound = (what: string) => new HttpError(404, 'notFound', `The resource '${what}' was not found`);
const invalid = (field: string, value: unknown, why: string) => new HttpError(400, 'invalid', `Invalid value for field '${field}': '${typeof value === 'string' ? value : JSON.stringify(value ?? '')}'. ${why}`);

export interface GceFakeOptions {
  backend: InstanceBackend;
  /** Pause between an operation's PENDING and RUNNING (ms). */
  operationStepMs?: number;
  /** Longest a `.../wait` call holds before answering a not-yet-DONE operation (real: ~2 min). */
  waitHoldMs?: number;
}

export class GceFake {
  readonly calls: CallRecord[] = [];
  readonly faults: GceFaults = { exhaustedZones: new Set(), quotaExceeded: false, throttleNext: 0, slowOperationsMs: 0, sshNeverAnswers: new Set() };
  private server?: http.Server;
  private readonly instances = new Map<string, InstanceRecord>(); // project/zone/name
  private readonly firewalls = new Map<string, FirewallRecord>(); // project/name
  private readonly operations = new Map<string, OperationRecord>(); // project/scope/name
  private readonly requestIds = new Map<string, string>(); // project/requestId -> operation key
  private readonly pending = new Set<Promise<unknown>>();
  private nextId = 4_000_000_000_000_000_000n;
  private readonly stepMs: number;
  private readonly waitHoldMs: number;

  constructor(private readonly options: GceFakeOptions) {
    this.stepMs = options.operationStepMs ?? 50;
    this.waitHoldMs = options.waitHoldMs ?? 5_000;
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this.url;
  }

  get port(): number {
    return (this.server!.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops serving and removes every host that still backs an instance. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
    await Promise.allSettled([...this.pending]);
    await Promise.allSettled([...this.instances.values()].map(async (i) => {
      await i.launched;
      await i.host?.remove();
    }));
    this.instances.clear();
  }

  /** Instance resources as the API returns them. */
  listInstances(project?: string): Array<Record<string, unknown>> {
    return [...this.instances.entries()].filter(([k]) => !project || k.startsWith(`${project}/`)).map(([, v]) => v.resource);
  }

  listFirewalls(project?: string): Array<Record<string, unknown>> {
    return [...this.firewalls.entries()].filter(([k]) => !project || k.startsWith(`${project}/`)).map(([, v]) => v.resource);
  }

  /** The calls whose path ends with `suffix` (and method, when given). */
  callsTo(method: string, pathPattern: RegExp): CallRecord[] {
    return this.calls.filter((c) => c.method === method && pathPattern.test(c.path));
  }

  /** The keys the instance's guest publishes under hostkeys/ (the backing host's own). */
  async publishedHostKeys(project: string, zone: string, name: string): Promise<string[]> {
    const record = this.instances.get(`${project}/${zone}/${name}`);
    return record?.host ? record.host.hostKeys() : [];
  }

  /** Puts a firewall rule in place as another tool (or a person) would have made it. */
  addForeignFirewall(project: string, resource: Record<string, unknown>): void {
    const name = String(resource['name']);
    this.firewalls.set(`${project}/${name}`, { resource: this.firewallResource(project, resource) });
  }

  /** Waits until no operation is still running (so a test sees the final state). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = undefined;
    const query = Object.fromEntries(url.searchParams.entries());
    const record: CallRecord = { method: req.method ?? 'GET', path: url.pathname, query, body: undefined, status: 0, at: Date.now() };
    this.calls.push(record);
    const send = (status: number, payload: unknown) => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify(payload));
    };
    try {
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          throw new HttpError(400, 'parseError', 'Invalid JSON payload received.');
        }
      }
      record.body = body;
      this.checkAuth(req);
      if (this.faults.throttleNext > 0) {
        this.faults.throttleNext--;
        throw new HttpError(429, 'rateLimitExceeded', 'Rate Limit Exceeded', { status: 'RESOURCE_EXHAUSTED' });
      }
      const match = /^\/compute\/v1\/projects\/([a-z][-a-z0-9.:]{0,62})\/(.*)$/.exec(url.pathname);
      if (!match) throw new HttpError(404, 'notFound', `The requested URL ${url.pathname} was not found on this server.`);
      const [, project, rest] = match as unknown as [string, string, string];
      send(200, await this.route(req.method ?? 'GET', project, rest.split('/'), query, (body ?? {}) as Record<string, unknown>));
    } catch (error) {
      if (error instanceof HttpError) {
        send(error.status, {
          error: {
            code: error.status,
            message: error.message,
            errors: [{ message: error.message, domain: error.status === 403 && error.reason === 'QUOTA_EXCEEDED' ? 'usageLimits' : 'global', reason: error.reason }],
            ...error.extra,
          },
        });
      } else {
        send(500, { error: { code: 500, message: `Internal error: ${String(error)}`, errors: [{ message: 'Internal error', domain: 'global', reason: 'backendError' }] } });
      }
    }
  }

  private checkAuth(req: http.IncomingMessage): void {
    const header = req.headers.authorization ?? '';
    if (!/^Bearer \S+$/.test(header)) {
      throw new HttpError(401, 'required', 'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.', { status: 'UNAUTHENTICATED' });
    }
    if (this.faults.forbidden === 'scopes') {
      throw new HttpError(403, 'insufficientPermissions', 'Request had insufficient authentication scopes.', {
        status: 'PERMISSION_DENIED',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT', domain: 'googleapis.com', metadata: { service: 'compute.googleapis.com', method: 'compute.v1.InstancesService.Insert' } }],
      });
    }
    if (this.faults.forbidden === 'permission') {
      throw new HttpError(403, 'forbidden', "Required 'compute.instances.create' permission for 'projects/p/zones/z/instances/x'", { status: 'PERMISSION_DENIED' });
    }
  }

  private async route(method: string, project: string, parts: string[], query: Record<string, string>, body: Record<string, unknown>): Promise<unknown> {
    const [scope, a, b, c, d, e] = parts;
    if (scope === 'global') {
      if (a === 'images' && b === 'family' && c && method === 'GET') return this.imageFromFamily(project, c);
      if (a === 'images' && b && !c && method === 'GET') return this.image(project, b);
      if (a === 'networks' && b && method === 'GET') return this.network(project, b);
      if (a === 'firewalls' && !b && method === 'POST') return this.insertFirewall(project, body, query);
      if (a === 'firewalls' && !b && method === 'GET') return this.list('compute#firewallList', this.listFirewalls(project), query, `${API}/projects/${project}/global/firewalls`);
      if (a === 'firewalls' && b && method === 'GET') return this.getFirewall(project, b).resource;
      if (a === 'firewalls' && b && method === 'DELETE') return this.deleteFirewall(project, b, query);
      if (a === 'firewalls' && b && method === 'PATCH') return this.patchFirewall(project, b, body, query);
      if (a === 'operations' && b && !c && method === 'GET') return this.operation(project, 'global', b).resource;
      if (a === 'operations' && b && c === 'wait' && method === 'POST') return this.waitOperation(project, 'global', b);
    }
    if (scope === 'zones' && a) {
      const zone = a;
      if (!KNOWN_ZONES.includes(zone)) throw notFound(`projects/${project}/zones/${zone}`);
      if (!b && method === 'GET') return { kind: 'compute#zone', name: zone, status: 'UP', region: `${API}/projects/${project}/regions/${zone.replace(/-[a-z]$/, '')}`, selfLink: `${API}/projects/${project}/zones/${zone}` };
      if (b === 'machineTypes' && c && method === 'GET') {
        if (!KNOWN_MACHINE_TYPES.includes(c)) throw notFound(`projects/${project}/zones/${zone}/machineTypes/${c}`);
        return { kind: 'compute#machineType', name: c, zone, selfLink: `${API}/projects/${project}/zones/${zone}/machineTypes/${c}` };
      }
      if (b === 'instances') {
        if (!c && method === 'POST') return this.insertInstance(project, zone, body, query);
        if (!c && method === 'GET') return this.list('compute#instanceList', this.zoneInstances(project, zone), query, `${API}/projects/${project}/zones/${zone}/instances`);
        if (c === 'bulkInsert' && !d && method === 'POST') return this.bulkInsert(project, zone, body, query);
        if (c && !d && method === 'GET') return this.getInstance(project, zone, c).resource;
        if (c && !d && method === 'DELETE') return this.deleteInstance(project, zone, c, query);
        if (c && d === 'getGuestAttributes' && method === 'GET') return this.guestAttributes(project, zone, c, query);
        if (c && (d === 'start' || d === 'stop' || d === 'reset') && !e && method === 'POST') return this.power(project, zone, c, d, query);
        if (c && d === 'setLabels' && !e && method === 'POST') return this.setLabels(project, zone, c, body, query);
      }
      if (b === 'operations' && c && !d && method === 'GET') return this.operation(project, `zones/${zone}`, c).resource;
      if (b === 'operations' && c && d === 'wait' && method === 'POST') return this.waitOperation(project, `zones/${zone}`, c);
    }
    if (scope === 'aggregated' && a === 'instances' && method === 'GET') {
      const items: Record<string, unknown> = {};
      for (const zone of KNOWN_ZONES) {
        const found = this.filtered(this.zoneInstances(project, zone), query['filter']);
        items[`zones/${zone}`] = found.length > 0 ? { instances: found } : { warning: { code: 'NO_RESULTS_ON_PAGE', message: 'There are no results for scope' } };
      }
      return { kind: 'compute#instanceAggregatedList', id: `projects/${project}/aggregated/instances`, items, selfLink: `${API}/projects/${project}/aggregated/instances` };
    }
    throw new HttpError(404, 'notFound', `The requested URL /compute/v1/projects/${project}/${parts.join('/')} was not found on this server.`);
  }

  // ---------------------------------------------------------------- lists and filters

  private list(kind: string, items: Array<Record<string, unknown>>, query: Record<string, string>, selfLink: string): unknown {
    return { kind, id: selfLink, items: this.filtered(items, query['filter']), selfLink };
  }

  /** The filter subset tmachine and gcloud use: `field = "value"` / `field eq value` terms joined by AND. */
  private filtered(items: Array<Record<string, unknown>>, filter: string | undefined): Array<Record<string, unknown>> {
    if (!filter) return items;
    const terms = filter.split(/\s+AND\s+/i).map((t) => t.trim().replace(/^\((.*)\)$/, '$1'));
    const parsed = terms.map((term) => {
      const m = /^([a-zA-Z0-9_.-]+)\s*(=|!=|eq|ne)\s*"?([^"]*)"?$/.exec(term);
      if (!m) throw new HttpError(400, 'invalid', `Invalid list filter expression '${filter}'.`);
      return { path: m[1]!.split('.'), op: m[2]!, value: m[3]! };
    });
    return items.filter((item) =>
      parsed.every(({ path, op, value }) => {
        let v: unknown = item;
        for (const p of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
        const actual = v === undefined ? '' : String(v);
        if (op === '=' ) return actual === value;
        if (op === '!=') return actual !== value;
        const re = new RegExp(`^(?:${value})$`);
        return op === 'eq' ? re.test(actual) : !re.test(actual);
      }),
    );
  }

  private zoneInstances(project: string, zone: string): Array<Record<string, unknown>> {
    return [...this.instances.entries()].filter(([k]) => k.startsWith(`${project}/${zone}/`)).map(([, v]) => v.resource);
  }

  // ---------------------------------------------------------------- images, networks

  private imageFromFamily(project: string, family: string): unknown {
    const name = IMAGE_FAMILIES[project]?.[family];
    if (!name) throw notFound(`projects/${project}/global/images/family/${family}`);
    return this.imageResource(project, name, family);
  }

  private image(project: string, name: string): unknown {
    const family = Object.entries(IMAGE_FAMILIES[project] ?? {}).find(([, n]) => n === name)?.[0];
    if (!family) throw notFound(`projects/${project}/global/images/${name}`);
    return this.imageResource(project, name, family);
  }

  private imageResource(project: string, name: string, family: string): unknown {
    return { kind: 'compute#image', id: '1234567890', name, family, status: 'READY', diskSizeGb: '10', architecture: 'X86_64', selfLink: `${API}/projects/${project}/global/images/${name}` };
  }

  private knownImage(link: string): boolean {
    const m = /(?:^|\/)projects\/([^/]+)\/global\/images\/(family\/)?([^/]+)$/.exec(link) ?? /^([^/]+)\/global\/images\/(family\/)?([^/]+)$/.exec(link);
    if (!m) return false;
    const families = IMAGE_FAMILIES[m[1]!] ?? {};
    return m[2] ? m[3]! in families : Object.values(families).includes(m[3]!);
  }

  private network(project: string, name: string): unknown {
    if (name !== 'default') throw notFound(`projects/${project}/global/networks/${name}`);
    return { kind: 'compute#network', id: '9876543210', name, autoCreateSubnetworks: true, mtu: this.options.backend.mtu(), routingConfig: { routingMode: 'REGIONAL' }, selfLink: `${API}/projects/${project}/global/networks/${name}` };
  }

  private networkName(link: unknown, field: string): string {
    const text = String(link ?? 'global/networks/default');
    const m = /(?:^|\/)global\/networks\/([^/]+)$/.exec(text);
    if (!m) throw invalid(field, text, 'The URL is malformed.');
    if (m[1] !== 'default') throw notFound(`projects/p/global/networks/${m[1]!}`);
    return m[1]!;
  }

  // ---------------------------------------------------------------- operations

  private newOperation(project: string, scope: string, type: string, targetLink: string, targetId: string): OperationRecord {
    const name = `operation-${Date.now()}-${randomUUID().slice(0, 13)}`;
    let finish = () => undefined as void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const zoneUrl = scope === 'global' ? undefined : `${API}/projects/${project}/${scope}`;
    const resource: Record<string, unknown> = {
      kind: 'compute#operation',
      id: String(this.nextId++),
      name,
      operationType: type,
      targetLink,
      targetId,
      status: 'PENDING',
      user: 'tmachine-test@example.iam.gserviceaccount.com',
      progress: 0,
      insertTime: new Date().toISOString(),
      selfLink: `${API}/projects/${project}/${scope}/operations/${name}`,
      ...(zoneUrl ? { zone: zoneUrl } : {}),
    };
    const op: OperationRecord = { resource, done, finish, ...(zoneUrl ? { zone: scope.slice('zones/'.length) } : {}) };
    this.operations.set(`${project}/${scope}/${name}`, op);
    return op;
  }

  /** Runs an operation's work in the background: PENDING → RUNNING → (work) → DONE. */
  private run(op: OperationRecord, work: () => Promise<void>): void {
    const task = (async () => {
      await pause(this.stepMs);
      op.resource['status'] = 'RUNNING';
      op.resource['startTime'] = new Date().toISOString();
      op.resource['progress'] = 0;
      try {
        await work();
      } catch (error) {
        const failure = error instanceof OperationFailure ? error : new OperationFailure('INTERNAL_ERROR', String(error), 500, 'INTERNAL SERVER ERROR');
        op.resource['error'] = { errors: [{ code: failure.code, message: failure.message }] };
        op.resource['httpErrorStatusCode'] = failure.httpStatus;
        op.resource['httpErrorMessage'] = failure.httpMessage;
      }
      op.resource['status'] = 'DONE';
      op.resource['progress'] = 100;
      op.resource['endTime'] = new Date().toISOString();
      op.finish();
    })();
    this.pending.add(task);
    void task.finally(() => this.pending.delete(task));
  }

  private operation(project: string, scope: string, name: string): OperationRecord {
    const op = this.operations.get(`${project}/${scope}/${name}`);
    if (!op) throw notFound(`projects/${project}/${scope}/operations/${name}`);
    return op;
  }

  private async waitOperation(project: string, scope: string, name: string): Promise<unknown> {
    const op = this.operation(project, scope, name);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([op.done, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.waitHoldMs)))]);
    clearTimeout(timer);
    return op.resource;
  }

  /** The same requestId within a project answers the operation it started, and does nothing again. */
  private idempotent(project: string, query: Record<string, string>, start: () => OperationRecord): unknown {
    const requestId = query['requestId'];
    if (requestId !== undefined && (!UUID.test(requestId) || /^[0-]+$/.test(requestId))) {
      throw invalid('requestId', requestId, 'The requestId must be a valid UUID (the zero UUID is not supported).');
    }
    if (requestId) {
      const known = this.requestIds.get(`${project}/${requestId}`);
      if (known) return this.operations.get(known)!.resource;
    }
    const op = start();
    if (requestId) this.requestIds.set(`${project}/${requestId}`, this.operationKey(op));
    return op.resource;
  }

  private operationKey(op: OperationRecord): string {
    return [...this.operations.entries()].find(([, v]) => v === op)![0];
  }

  // ---------------------------------------------------------------- firewalls

  private firewallResource(project: string, body: Record<string, unknown>): Record<string, unknown> {
    const name = String(body['name'] ?? '');
    if (!NAME.test(name)) throw invalid('resource.name', name, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'");
    const network = this.networkName(body['network'], 'resource.network');
    const allowed = body['allowed'] as Array<Record<string, unknown>> | undefined;
    const denied = body['denied'] as Array<Record<string, unknown>> | undefined;
    if (!allowed?.length && !denied?.length) throw new HttpError(400, 'invalid', "Invalid value for field 'resource': ''. Either allowed or denied rules must be specified.");
    for (const [i, rule] of (allowed ?? denied ?? []).entries()) {
      const protocol = String(rule['IPProtocol'] ?? '');
      if (!['tcp', 'udp', 'icmp', 'esp', 'ah', 'sctp', 'ipip', 'all'].includes(protocol) && !/^\d+$/.test(protocol)) throw invalid(`resource.allowed[${i}].IPProtocol`, protocol, 'Unsupported protocol.');
      const ports = rule['ports'] as string[] | undefined;
      if (ports?.length && !['tcp', 'udp', 'sctp', 'all'].includes(protocol)) throw invalid(`resource.allowed[${i}].ports`, ports.join(','), 'Ports may only be specified for tcp, udp or sctp.');
      for (const p of ports ?? []) if (!/^\d{1,5}(-\d{1,5})?$/.test(p)) throw invalid(`resource.allowed[${i}].ports`, p, 'Invalid port.');
    }
    const sourceRanges = body['sourceRanges'] as string[] | undefined;
    const sourceTags = body['sourceTags'] as string[] | undefined;
    return {
      kind: 'compute#firewall',
      id: String(this.nextId++),
      creationTimestamp: new Date().toISOString(),
      name,
      description: body['description'] ?? '',
      network: `${API}/projects/${project}/global/networks/${network}`,
      priority: body['priority'] ?? 1000,
      direction: body['direction'] ?? 'INGRESS',
      ...(sourceRanges?.length || !sourceTags?.length ? { sourceRanges: sourceRanges?.length ? sourceRanges : ['0.0.0.0/0'] } : {}),
      ...(sourceTags?.length ? { sourceTags } : {}),
      ...(body['targetTags'] ? { targetTags: body['targetTags'] } : {}),
      ...(allowed ? { allowed } : {}),
      ...(denied ? { denied } : {}),
      logConfig: { enable: false },
      disabled: false,
      selfLink: `${API}/projects/${project}/global/firewalls/${name}`,
    };
  }

  private insertFirewall(project: string, body: Record<string, unknown>, query: Record<string, string>): unknown {
    return this.idempotent(project, query, () => {
      const resource = this.firewallResource(project, body);
      const key = `${project}/${String(resource['name'])}`;
      if (this.firewalls.has(key)) throw new HttpError(409, 'alreadyExists', `The resource 'projects/${project}/global/firewalls/${String(resource['name'])}' already exists`);
      const op = this.newOperation(project, 'global', 'insert', String(resource['selfLink']), String(resource['id']));
      this.firewalls.set(key, { resource });
      this.run(op, async () => undefined);
      return op;
    });
  }

  private getFirewall(project: string, name: string): FirewallRecord {
    const found = this.firewalls.get(`${project}/${name}`);
    if (!found) throw notFound(`projects/${project}/global/firewalls/${name}`);
    return found;
  }

  /** PATCH semantics: the fields sent replace the rule's; the name cannot change. */
  private patchFirewall(project: string, name: string, body: Record<string, unknown>, query: Record<string, string>): unknown {
    return this.idempotent(project, query, () => {
      const found = this.getFirewall(project, name);
      if (body['name'] !== undefined && body['name'] !== name) throw invalid('resource.name', body['name'], 'The name of a firewall rule cannot be changed.');
      const merged = { ...found.resource, ...body, name };
      const checked = this.firewallResource(project, merged);
      const op = this.newOperation(project, 'global', 'patch', String(found.resource['selfLink']), String(found.resource['id']));
      this.run(op, async () => {
        found.resource = { ...checked, id: found.resource['id'], creationTimestamp: found.resource['creationTimestamp'] };
      });
      return op;
    });
  }

  private deleteFirewall(project: string, name: string, query: Record<string, string>): unknown {
    return this.idempotent(project, query, () => {
      const found = this.getFirewall(project, name);
      const op = this.newOperation(project, 'global', 'delete', String(found.resource['selfLink']), String(found.resource['id']));
      this.run(op, async () => {
        this.firewalls.delete(`${project}/${name}`);
      });
      return op;
    });
  }

  // ---------------------------------------------------------------- instances

  private getInstance(project: string, zone: string, name: string): InstanceRecord {
    const found = this.instances.get(`${project}/${zone}/${name}`);
    if (!found) throw notFound(`projects/${project}/zones/${zone}/instances/${name}`);
    return found;
  }

  /** Checks an instance body (insert) or instanceProperties (bulkInsert) as the API does. */
  private validateInstance(project: string, zone: string, props: Record<string, unknown>, field: string, bare: boolean): { machineType: string } {
    const typeLink = String(props['machineType'] ?? '');
    if (!typeLink) throw invalid(`${field}.machineType`, '', 'Machine type must be specified.');
    const typeMatch = bare ? /^([a-z0-9-]+)$/.exec(typeLink) : /(?:^|\/)zones\/([^/]+)\/machineTypes\/([a-z0-9-]+)$/.exec(typeLink);
    if (!typeMatch) throw invalid(`${field}.machineType`, typeLink, 'The URL is malformed.');
    const typeZone = bare ? zone : typeMatch[1]!;
    const type = bare ? typeMatch[1]! : typeMatch[2]!;
    if (typeZone !== zone) throw invalid(`${field}.machineType`, typeLink, `Cross-zone reference to zone '${typeZone}' is not allowed.`);
    if (!KNOWN_MACHINE_TYPES.includes(type)) throw invalid(`${field}.machineType`, typeLink, `Machine type with name '${type}' does not exist in zone '${zone}'.`);
    const disks = (props['disks'] ?? []) as Array<Record<string, unknown>>;
    const boot = disks.find((d) => d['boot'] === true);
    if (!boot) throw invalid(`${field}.disks`, '', 'Boot disk must be specified.');
    const init = (boot['initializeParams'] ?? {}) as Record<string, unknown>;
    const image = String(init['sourceImage'] ?? '');
    if (!this.knownImage(image)) throw notFound(image.replace(/^https?:\/\/[^/]+\/compute\/v1\//, '') || `${field}.disks[0].initializeParams.sourceImage`);
    const diskType = init['diskType'] === undefined ? undefined : String(init['diskType']);
    if (diskType !== undefined) {
      const dt = bare ? /^([a-z0-9-]+)$/.exec(diskType) : /(?:^|\/)zones\/[^/]+\/diskTypes\/([a-z0-9-]+)$/.exec(diskType);
      if (!dt || !DISK_TYPES.includes(dt[1]!)) throw invalid(`${field}.disks[0].initializeParams.diskType`, diskType, 'Invalid disk type.');
    }
    if (init['diskSizeGb'] !== undefined && !(Number(init['diskSizeGb']) >= 10)) throw invalid(`${field}.disks[0].initializeParams.diskSizeGb`, init['diskSizeGb'], 'Requested disk size cannot be smaller than the image size (10 GB).');
    const nics = (props['networkInterfaces'] ?? []) as Array<Record<string, unknown>>;
    if (nics.length === 0) throw invalid(`${field}.networkInterfaces`, '', 'At least one network interface must be specified.');
    this.networkName(nics[0]!['network'], `${field}.networkInterfaces[0].network`);
    for (const [k, v] of Object.entries((props['labels'] ?? {}) as Record<string, unknown>)) {
      if (!LABEL_KEY.test(k) || !LABEL_VALUE.test(String(v))) throw invalid(`${field}.labels`, `${k}=${String(v)}`, 'Label keys and values may contain only lowercase letters, numbers, underscores and dashes.');
    }
    for (const tag of ((props['tags'] as { items?: string[] } | undefined)?.items ?? [])) {
      if (!NAME.test(tag)) throw invalid(`${field}.tags.items`, tag, 'Must be a match of regex (?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)');
    }
    return { machineType: type };
  }

  private instanceResource(project: string, zone: string, name: string, props: Record<string, unknown>, machineType: string): Record<string, unknown> {
    const nic = ((props['networkInterfaces'] as Array<Record<string, unknown>>)[0] ?? {}) as Record<string, unknown>;
    const access = (nic['accessConfigs'] ?? []) as Array<Record<string, unknown>>;
    const region = zone.replace(/-[a-z]$/, '');
    const metadata = (props['metadata'] ?? {}) as { items?: Array<{ key: string; value: string }> };
    const boot = ((props['disks'] as Array<Record<string, unknown>>).find((d) => d['boot'] === true) ?? {}) as Record<string, unknown>;
    const init = (boot['initializeParams'] ?? {}) as Record<string, unknown>;
    return {
      kind: 'compute#instance',
      id: String(this.nextId++),
      creationTimestamp: new Date().toISOString(),
      name,
      description: props['description'] ?? '',
      tags: { items: (props['tags'] as { items?: string[] } | undefined)?.items ?? [], fingerprint: randomUUID().slice(0, 12) },
      machineType: `${API}/projects/${project}/zones/${zone}/machineTypes/${machineType}`,
      status: 'PROVISIONING',
      zone: `${API}/projects/${project}/zones/${zone}`,
      canIpForward: false,
      networkInterfaces: [
        {
          kind: 'compute#networkInterface',
          network: `${API}/projects/${project}/global/networks/${this.networkName(nic['network'], 'network')}`,
          subnetwork: `${API}/projects/${project}/regions/${region}/subnetworks/${String(nic['subnetwork'] ?? 'default').split('/').pop()}`,
          name: 'nic0',
          fingerprint: randomUUID().slice(0, 12),
          stackType: 'IPV4_ONLY',
          ...(access.length > 0 ? { accessConfigs: access.map((a) => ({ kind: 'compute#accessConfig', type: a['type'] ?? 'ONE_TO_ONE_NAT', name: a['name'] ?? 'External NAT', networkTier: 'PREMIUM' })) } : {}),
        },
      ],
      disks: [
        {
          kind: 'compute#attachedDisk',
          type: 'PERSISTENT',
          mode: 'READ_WRITE',
          source: `${API}/projects/${project}/zones/${zone}/disks/${name}`,
          deviceName: name,
          index: 0,
          boot: true,
          autoDelete: boot['autoDelete'] ?? true,
          diskSizeGb: String(init['diskSizeGb'] ?? '10'),
          interface: 'SCSI',
          initializeParams: init,
        },
      ],
      metadata: { kind: 'compute#metadata', fingerprint: randomUUID().slice(0, 12), items: metadata.items ?? [] },
      serviceAccounts: props['serviceAccounts'] ?? [],
      selfLink: `${API}/projects/${project}/zones/${zone}/instances/${name}`,
      scheduling: props['scheduling'] ?? { onHostMaintenance: 'MIGRATE', automaticRestart: true, preemptible: false },
      cpuPlatform: 'Unknown CPU Platform',
      labels: props['labels'] ?? {},
      labelFingerprint: randomUUID().slice(0, 12),
      startRestricted: false,
      deletionProtection: false,
      fingerprint: randomUUID().slice(0, 12),
    };
  }

  private checkQuota(): void {
    if (this.faults.quotaExceeded) {
      throw new HttpError(403, 'QUOTA_EXCEEDED', "Quota 'CPUS' exceeded.  Limit: 8.0 in region europe-west1.", { status: 'PERMISSION_DENIED' });
    }
  }

  private insertInstance(project: string, zone: string, body: Record<string, unknown>, query: Record<string, string>): unknown {
    return this.idempotent(project, query, () => {
      const name = String(body['name'] ?? '');
      if (!NAME.test(name)) throw invalid('resource.name', name, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'");
      const { machineType } = this.validateInstance(project, zone, body, 'resource', false);
      this.checkQuota();
      if (this.instances.has(`${project}/${zone}/${name}`)) throw new HttpError(409, 'alreadyExists', `The resource 'projects/${project}/zones/${zone}/instances/${name}' already exists`);
      const resource = this.instanceResource(project, zone, name, body, machineType);
      const op = this.newOperation(project, `zones/${zone}`, 'insert', String(resource['selfLink']), String(resource['id']));
      const failure = this.capacityOrInjectedFailure(project, zone);
      const record = this.addInstance(project, zone, name, resource, failure);
      this.run(op, async () => {
        await record.launched;
        if (failure) throw failure;
        if (this.instances.get(`${project}/${zone}/${name}`) !== record || record.deleting) return;
        // A slow insert stays RUNNING; a delete in the meantime ends it (the instance is going).
        const slowUntil = Date.now() + this.faults.slowOperationsMs;
        while (Date.now() < slowUntil && !record.deleting) await pause(Math.min(100, slowUntil - Date.now()));
      });
      return op;
    });
  }

  private bulkInsert(project: string, zone: string, body: Record<string, unknown>, query: Record<string, string>): unknown {
    return this.idempotent(project, query, () => {
      const count = Number(body['count'] ?? NaN);
      if (!Number.isInteger(count) || count < 1) throw invalid('resource.count', body['count'], 'Count must be a positive integer.');
      const perInstance = Object.keys((body['perInstanceProperties'] ?? {}) as Record<string, unknown>);
      const pattern = body['namePattern'] === undefined ? undefined : String(body['namePattern']);
      if (perInstance.length === 0 && !pattern) throw invalid('resource.namePattern', '', 'Either namePattern or perInstanceProperties must be specified.');
      if (perInstance.length > count) throw invalid('resource.count', body['count'], 'Count must not be smaller than the number of perInstanceProperties.');
      const names = [...perInstance];
      for (let n = 1; names.length < count; n++) {
        const hashes = /#+/.exec(pattern ?? '');
        if (!hashes) throw invalid('resource.namePattern', pattern, "The name pattern must contain '#' characters.");
        const candidate = pattern!.replace(hashes[0], String(n).padStart(hashes[0].length, '0'));
        if (!names.includes(candidate)) names.push(candidate);
      }
      for (const name of names) if (!NAME.test(name)) throw invalid('resource.perInstanceProperties', name, 'Invalid instance name.');
      const props = (body['instanceProperties'] ?? {}) as Record<string, unknown>;
      const { machineType } = this.validateInstance(project, zone, props, 'resource.instanceProperties', true);
      this.checkQuota();
      for (const name of names) if (this.instances.has(`${project}/${zone}/${name}`)) throw new HttpError(409, 'alreadyExists', `The resource 'projects/${project}/zones/${zone}/instances/${name}' already exists`);
      const failure = this.capacityOrInjectedFailure(project, zone);
      const op = this.newOperation(project, `zones/${zone}`, 'bulkInsert', `${API}/projects/${project}/zones/${zone}`, String(this.nextId++));
      const records = names.map((name) => this.addInstance(project, zone, name, this.instanceResource(project, zone, name, props, machineType), failure));
      op.resource['instancesBulkInsertOperationMetadata'] = { perLocationStatus: {} };
      this.run(op, async () => {
        await Promise.all(records.map((r) => r.launched));
        if (failure) throw failure;
        if (this.faults.slowOperationsMs > 0) await pause(this.faults.slowOperationsMs);
        op.resource['instancesBulkInsertOperationMetadata'] = { perLocationStatus: { [`zones/${zone}`]: { status: 'DONE', createdVmCount: names.length, targetVmCount: count, failedToCreateVmCount: 0 } } };
      });
      return op;
    });
  }

  /** An insert in an exhausted zone (or with an injected operation error) fails in its operation, as GCE does. */
  private capacityOrInjectedFailure(project: string, zone: string): OperationFailure | undefined {
    if (this.faults.exhaustedZones.has(zone)) {
      return new OperationFailure('ZONE_RESOURCE_POOL_EXHAUSTED', `The zone 'projects/${project}/zones/${zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.`, 503, 'SERVICE UNAVAILABLE');
    }
    const injected = this.faults.operationError;
    if (injected) {
      this.faults.operationError = undefined;
      return new OperationFailure(injected.code, injected.message, 400, 'BAD REQUEST');
    }
    return undefined;
  }

  /** Adds the instance (PROVISIONING) and launches its host, unless the insert is going to fail. */
  private addInstance(project: string, zone: string, name: string, resource: Record<string, unknown>, failure: OperationFailure | undefined): InstanceRecord {
    const key = `${project}/${zone}/${name}`;
    const record: InstanceRecord = { resource, launched: Promise.resolve(), deleting: false };
    this.instances.set(key, record);
    if (failure) {
      // The instance exists while the operation runs, and is gone when it fails.
      record.launched = pause(this.stepMs * 2).then(() => {
        if (this.instances.get(key) === record) this.instances.delete(key);
      });
      return record;
    }
    const items = ((resource['metadata'] as { items: Array<{ key: string; value: string }> }).items ?? []);
    const metadata = Object.fromEntries(items.map((i) => [i.key, String(i.value)]));
    record.launched = (async () => {
      try {
        resource['status'] = 'STAGING';
        const host = await this.options.backend.launch({
          instance: name,
          zone,
          hostname: `${name}.${zone}.c.${project}.internal`,
          sshKeys: parseSshKeys(metadata['ssh-keys']),
          metadata,
          sshNeverAnswers: this.faults.sshNeverAnswers.has(name),
        });
        record.host = host;
        if (record.deleting) return;
        this.setAddresses(resource, host.ip);
        resource['status'] = 'RUNNING';
        resource['lastStartTimestamp'] = new Date().toISOString();
      } catch (error) {
        resource['status'] = 'TERMINATED';
        throw new OperationFailure('INTERNAL_ERROR', `the backing host did not start: ${String(error)}`, 500, 'INTERNAL SERVER ERROR');
      }
    })();
    return record;
  }

  private setAddresses(resource: Record<string, unknown>, ip: string | undefined): void {
    const nic = (resource['networkInterfaces'] as Array<Record<string, unknown>>)[0]!;
    if (ip) nic['networkIP'] = ip;
    for (const access of (nic['accessConfigs'] ?? []) as Array<Record<string, unknown>>) {
      if (ip) access['natIP'] = ip;
      else delete access['natIP'];
    }
  }

  private deleteInstance(project: string, zone: string, name: string, query: Record<string, string>): unknown {
    return this.idempotent(project, query, () => {
      const record = this.getInstance(project, zone, name);
      const op = this.newOperation(project, `zones/${zone}`, 'delete', String(record.resource['selfLink']), String(record.resource['id']));
      record.deleting = true;
      record.resource['status'] = 'STOPPING';
      this.run(op, async () => {
        await record.launched.catch(() => undefined);
        await record.host?.remove();
        if (this.instances.get(`${project}/${zone}/${name}`) === record) this.instances.delete(`${project}/${zone}/${name}`);
      });
      return op;
    });
  }

  private power(project: string, zone: string, name: string, action: 'start' | 'stop' | 'reset', query: Record<string, string>): unknown {
    return this.idempotent(project, query, () => {
      const record = this.getInstance(project, zone, name);
      const status = String(record.resource['status']);
      if (action === 'reset' && status !== 'RUNNING') {
        throw new HttpError(400, 'resourceNotReady', `The resource 'projects/${project}/zones/${zone}/instances/${name}' is not ready`);
      }
      const op = this.newOperation(project, `zones/${zone}`, action, String(record.resource['selfLink']), String(record.resource['id']));
      this.run(op, async () => {
        await record.launched;
        const host = record.host;
        if (!host) throw new OperationFailure('RESOURCE_NOT_READY', `The resource 'projects/${project}/zones/${zone}/instances/${name}' is not ready`, 400, 'BAD REQUEST');
        if (action === 'stop') {
          if (status === 'TERMINATED') return;
          record.resource['status'] = 'STOPPING';
          await host.stop();
          record.resource['status'] = 'TERMINATED';
          // A stopped instance keeps its internal address; its ephemeral external address is released.
          for (const access of ((record.resource['networkInterfaces'] as Array<Record<string, unknown>>)[0]!['accessConfigs'] ?? []) as Array<Record<string, unknown>>) delete access['natIP'];
        } else if (action === 'start') {
          if (status === 'RUNNING') return;
          record.resource['status'] = 'STAGING';
          await host.start();
          this.setAddresses(record.resource, host.ip);
          record.resource['status'] = 'RUNNING';
          record.resource['lastStartTimestamp'] = new Date().toISOString();
        } else {
          await host.reset();
          this.setAddresses(record.resource, host.ip);
        }
      });
      return op;
    });
  }

  private setLabels(project: string, zone: string, name: string, body: Record<string, unknown>, query: Record<string, string>): unknown {
    return this.idempotent(project, query, () => {
      const record = this.getInstance(project, zone, name);
      if (body['labelFingerprint'] !== record.resource['labelFingerprint']) {
        throw new HttpError(412, 'conditionNotMet', 'Labels fingerprint either invalid or resource labels have changed');
      }
      const labels = (body['labels'] ?? {}) as Record<string, unknown>;
      for (const [k, v] of Object.entries(labels)) {
        if (!LABEL_KEY.test(k) || !LABEL_VALUE.test(String(v))) throw invalid('labels', `${k}=${String(v)}`, 'Label keys and values may contain only lowercase letters, numbers, underscores and dashes.');
      }
      const op = this.newOperation(project, `zones/${zone}`, 'setLabels', String(record.resource['selfLink']), String(record.resource['id']));
      this.run(op, async () => {
        record.resource['labels'] = labels;
        record.resource['labelFingerprint'] = randomUUID().slice(0, 12);
      });
      return op;
    });
  }

  private async guestAttributes(project: string, zone: string, name: string, query: Record<string, string>): Promise<unknown> {
    const record = this.getInstance(project, zone, name);
    const metadata = (record.resource['metadata'] as { items: Array<{ key: string; value: string }> }).items;
    const enabled = metadata.some((i) => i.key === 'enable-guest-attributes' && String(i.value).toUpperCase() === 'TRUE');
    if (!enabled) throw new HttpError(400, 'badRequest', `Guest attributes are disabled for instance '${name}'. Enable them with the metadata key 'enable-guest-attributes'.`);
    const path = query['queryPath'] ?? '';
    const host = record.resource['status'] === 'RUNNING' ? record.host : undefined;
    const keys = host ? await host.hostKeys() : [];
    // The guest agent publishes one item per key type under hostkeys/, once the host has booted.
    const items = keys
      .map((line) => line.trim().split(/\s+/))
      .filter((p) => p.length >= 2)
      .map(([type, value]) => ({ namespace: 'hostkeys', key: type!, value: value! }));
    if (path !== 'hostkeys/' && path !== 'hostkeys') throw notFound(`projects/${project}/zones/${zone}/instances/${name}/guestAttributes/${path}`);
    if (items.length === 0) throw notFound(`projects/${project}/zones/${zone}/instances/${name}/guestAttributes/${path}`);
    return { kind: 'compute#guestAttributes', queryPath: path, queryValue: { items }, selfLink: `${API}/projects/${project}/zones/${zone}/instances/${name}/guestAttributes/${path}` };
  }
}

class OperationFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus: number,
    readonly httpMessage: string,
  ) {
    super(message);
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
