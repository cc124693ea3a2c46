/**
 * The cluster's firewall rules (SPEC §4): SSH and the engine from the source ranges to the
 * cluster's network tag; the swarm ports from that tag to that tag only; ESP between members
 * only for encrypted overlays; extra ports when asked; a stack's published ports (`swarm
 * deploy --open-ports`), one rule per port, from the one range given. A rule is created when
 * missing, left alone when right, and a rule tmachine did not make is never edited.
 */
import { createHash, randomUUID } from 'node:crypto';
import { debug, DriverError, waitFor, type PortToOpen } from '../kit/index.js';
import { call, isNotFound, type Firewall, type GceClients } from './client.js';
import { waitOperation } from './operations.js';

/** Every rule tmachine makes says so in its description; only those are ever changed or removed. */
export const RULE_MARK = 'Made by tmachine';
const OPERATION_DEADLINE_MS = 5 * 60_000;

export interface RuleSpec {
  name: string;
  /** What the rule is for ("SSH and the engine"), for notes. */
  purpose: string;
  description: string;
  network: string;
  targetTags: string[];
  sourceRanges?: string[];
  sourceTags?: string[];
  allowed: Array<{ IPProtocol: string; ports?: string[] }>;
}

export interface RuleInput {
  /** The cluster's network tag (also the rules' name prefix). */
  tag: string;
  cluster: string | undefined;
  network: string;
  sourceRanges: string[];
  dataPathPort: number;
  encryptedOverlay: boolean;
  openPorts: string[];
}

/** The network tag of a cluster's machines: tmachine-<cluster>, or tmachine outside a cluster. */
export function clusterTag(cluster: string | undefined): string {
  if (!cluster) return 'tmachine';
  const cleaned = cluster.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  const tag = `tmachine-${cleaned}`;
  // Names are at most 63 characters and the longest rule suffix is "-open-" + 8.
  if (tag.length <= 48 && cleaned === cluster) return tag;
  return `${tag.slice(0, 39).replace(/-+$/, '')}-${createHash('sha256').update(cluster).digest('hex').slice(0, 8)}`;
}

export function desiredRules(input: RuleInput): RuleSpec[] {
  const of = input.cluster ? `cluster ${input.cluster}` : 'machines outside a cluster';
  const base = { network: input.network, targetTags: [input.tag] };
  const rules: RuleSpec[] = [
    {
      ...base,
      name: `${input.tag}-ssh-engine`,
      purpose: 'SSH and the engine',
      description: `${RULE_MARK}: SSH and the TLS engine API of ${of}`,
      sourceRanges: [...input.sourceRanges].sort(),
      allowed: [{ IPProtocol: 'tcp', ports: ['22', '2376'] }],
    },
    {
      ...base,
      name: `${input.tag}-swarm`,
      purpose: 'swarm ports between members',
      description: `${RULE_MARK}: swarm management, gossip and overlay traffic between the members of ${of}`,
      sourceTags: [input.tag],
      allowed: [
        { IPProtocol: 'tcp', ports: ['2377', '7946'] },
        { IPProtocol: 'udp', ports: [...new Set(['7946', String(input.dataPathPort)])] },
      ],
    },
  ];
  if (input.encryptedOverlay) {
    rules.push({ ...base, name: `${input.tag}-esp`, purpose: 'ESP between members', description: `${RULE_MARK}: ESP (encrypted overlay networks) between the members of ${of}`, sourceTags: [input.tag], allowed: [{ IPProtocol: 'esp' }] });
  }
  if (input.openPorts.length > 0) {
    const byProtocol = new Map<string, string[]>();
    for (const spec of input.openPorts) {
      const [port, protocol = 'tcp'] = spec.split('/');
      byProtocol.set(protocol, [...(byProtocol.get(protocol) ?? []), port!]);
    }
    const allowed = [...byProtocol.entries()].sort().map(([IPProtocol, ports]) => ({ IPProtocol, ports: [...new Set(ports)].sort() }));
    const id = createHash('sha256').update(JSON.stringify(allowed)).digest('hex').slice(0, 8);
    rules.push({ ...base, name: `${input.tag}-open-${id}`, purpose: `ports ${input.openPorts.join(', ')}`, description: `${RULE_MARK}: ports ${input.openPorts.join(', ')} of ${of}`, sourceRanges: [...input.sourceRanges].sort(), allowed });
  }
  return rules;
}

/** The name of the rule that opens one published port: tmachine-<cluster>-port-8080-tcp (at most 63 characters). */
export function publishedPortRuleName(tag: string, port: PortToOpen): string {
  return `${tag}-port-${port.port}-${port.protocol}`;
}

/**
 * One rule per published port, from `cidr` only, to the cluster's tag. A port opened before
 * from another range gets this range instead (the rule is updated), as in the host firewall.
 */
export function publishedPortRules(input: { tag: string; cluster: string | undefined; network: string; ports: PortToOpen[]; cidr: string }): RuleSpec[] {
  const of = input.cluster ? `cluster ${input.cluster}` : 'machines outside a cluster';
  const unique = [...new Map(input.ports.map((p) => [`${p.port}/${p.protocol}`, p])).values()];
  return unique.map((p) => ({
    name: publishedPortRuleName(input.tag, p),
    purpose: `port ${p.port}/${p.protocol}`,
    description: `${RULE_MARK}: port ${p.port}/${p.protocol} a stack of ${of} publishes (swarm deploy --open-ports)`,
    network: input.network,
    targetTags: [input.tag],
    sourceRanges: [input.cidr],
    allowed: [{ IPProtocol: p.protocol, ports: [String(p.port)] }],
  }));
}

/** The names of tmachine's published-port rules of a tag (a machine joining the cluster shares them). */
export async function publishedPortRuleNames(clients: GceClients, tag: string, signal?: AbortSignal): Promise<string[]> {
  const names: string[] = [];
  await call('firewalls.list', clients, async () => {
    names.length = 0;
    for await (const rule of clients.firewalls.listAsync({ project: clients.project, filter: `name eq ${tag}-port-.*` })) {
      if (rule.name && String(rule.description ?? '').startsWith(RULE_MARK)) names.push(rule.name);
    }
  }, signal);
  return names.sort();
}

function shape(rule: { network?: string | null; targetTags?: string[] | null; sourceRanges?: string[] | null; sourceTags?: string[] | null; allowed?: Array<{ IPProtocol?: string | null; ports?: string[] | null }> | null; direction?: string | null; disabled?: boolean | null }): string {
  return JSON.stringify({
    network: String(rule.network ?? '').split('/').pop(),
    direction: String(rule.direction ?? 'INGRESS'),
    disabled: Boolean(rule.disabled),
    targetTags: [...(rule.targetTags ?? [])].sort(),
    sourceRanges: [...(rule.sourceRanges ?? [])].sort(),
    sourceTags: [...(rule.sourceTags ?? [])].sort(),
    allowed: (rule.allowed ?? []).map((a) => `${String(a.IPProtocol)}:${[...(a.ports ?? [])].sort().join(',')}`).sort(),
  });
}

function resource(rule: RuleSpec): Firewall {
  return {
    name: rule.name,
    description: rule.description,
    network: `global/networks/${rule.network}`,
    direction: 'INGRESS',
    priority: 1000,
    targetTags: rule.targetTags,
    ...(rule.sourceRanges ? { sourceRanges: rule.sourceRanges } : {}),
    ...(rule.sourceTags ? { sourceTags: rule.sourceTags } : {}),
    allowed: rule.allowed,
  };
}

export type RuleOutcome = 'created' | 'kept' | 'updated' | 'foreign';

/**
 * Makes the rule right: created when missing, kept when right, updated when tmachine made it
 * and it differs; a rule of that name that tmachine did not make is used as it is when it
 * allows the same, and refused otherwise (it is never edited).
 */
export async function ensureRule(clients: GceClients, rule: RuleSpec, onCreated: () => Promise<void>, signal?: AbortSignal): Promise<RuleOutcome> {
  const existing = await getRule(clients, rule.name, signal);
  if (!existing) {
    try {
      const [op] = await call(`firewalls.insert ${rule.name}`, clients, () => clients.firewalls.insert({ project: clients.project, requestId: randomUUID(), firewallResource: resource(rule) }), signal);
      await onCreated();
      await waitOperation(clients, op.latestResponse as never, { call: `firewalls.insert ${rule.name}`, deadlineMs: OPERATION_DEADLINE_MS, ...(signal ? { signal } : {}) });
      return 'created';
    } catch (error) {
      // Another machine of the cluster made it at the same moment.
      if (error instanceof DriverError && error.kind === 'already-exists') return ensureRule(clients, rule, onCreated, signal);
      throw error;
    }
  }
  const ours = String(existing.description ?? '').startsWith(RULE_MARK);
  if (shape(existing) === shape(resource(rule))) return ours ? 'kept' : 'foreign';
  if (!ours) {
    throw new DriverError('already-exists', `gce: firewall rule ${rule.name} exists, was not made by tmachine, and does not allow ${rule.purpose} as tmachine needs`, {
      hint: `remove or rename that rule, or use another cluster name; tmachine never edits a rule it did not make`,
    });
  }
  const [op] = await call(`firewalls.patch ${rule.name}`, clients, () => clients.firewalls.patch({ project: clients.project, firewall: rule.name, requestId: randomUUID(), firewallResource: resource(rule) }), signal);
  await waitOperation(clients, op.latestResponse as never, { call: `firewalls.patch ${rule.name}`, deadlineMs: OPERATION_DEADLINE_MS, ...(signal ? { signal } : {}) });
  return 'updated';
}

export async function getRule(clients: GceClients, name: string, signal?: AbortSignal): Promise<Firewall | undefined> {
  try {
    const [rule] = await call(`firewalls.get ${name}`, clients, () => clients.firewalls.get({ project: clients.project, firewall: name }), signal);
    return rule;
  } catch (error) {
    if (error instanceof DriverError && error.kind === 'not-found') return undefined;
    throw error;
  }
}

/** tmachine's instances that carry `tag`, except `except` ("zone/name"), with their status. */
async function instancesWithTag(clients: GceClients, tag: string, except: string | undefined, signal?: AbortSignal): Promise<Array<{ key: string; status: string }>> {
  const found: Array<{ key: string; status: string }> = [];
  await call('instances.aggregatedList', clients, async () => {
    found.length = 0;
    for await (const [scope, list] of clients.instances.aggregatedListAsync({ project: clients.project, filter: 'labels.tmachine-managed = "true"' }, { autoPaginate: false })) {
      for (const instance of list.instances ?? []) {
        const key = `${scope.replace(/^zones\//, '')}/${instance.name ?? ''}`;
        if (key !== except && (instance.tags?.items ?? []).includes(tag)) found.push({ key, status: String(instance.status ?? '') });
      }
    }
  }, signal);
  return found;
}

/**
 * Removes a rule tmachine made once no other tmachine instance carries its tag. Instances
 * that are going away (another `rm` of the same cluster in parallel) are waited for, so the
 * last of them removes the rule rather than none.
 */
export async function removeRuleIfUnused(clients: GceClients, name: string, tag: string, exceptInstance: string | undefined, signal?: AbortSignal): Promise<'removed' | 'in-use' | 'gone'> {
  const users = await waitFor(
    async () => {
      const list = await instancesWithTag(clients, tag, exceptInstance, signal);
      return list.some((i) => i.status === 'STOPPING') ? undefined : list;
    },
    { what: `gce: instances with tag ${tag} settling`, deadlineMs: 3 * 60_000, intervalMs: 1_000, maxIntervalMs: 5_000, ...(signal ? { signal } : {}) },
  ).catch(() => [{ key: 'unknown', status: 'STOPPING' }]);
  if (users.length > 0) {
    debug('gce', `firewall rule ${name} stays: ${users.map((u) => u.key).join(', ')} still carry tag ${tag}`);
    return 'in-use';
  }
  const rule = await getRule(clients, name, signal);
  if (!rule) return 'gone';
  if (!String(rule.description ?? '').startsWith(RULE_MARK)) return 'in-use';
  try {
    const [op] = await call(`firewalls.delete ${name}`, clients, () => clients.firewalls.delete({ project: clients.project, firewall: name, requestId: randomUUID() }), signal);
    await waitOperation(clients, op.latestResponse as never, { call: `firewalls.delete ${name}`, deadlineMs: OPERATION_DEADLINE_MS, ...(signal ? { signal } : {}) });
  } catch (error) {
    if (isNotFound(error) || (error instanceof DriverError && error.kind === 'not-found')) return 'gone';
    throw error;
  }
  return 'removed';
}
