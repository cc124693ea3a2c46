/**
 * The gce driver: Compute Engine instances through `@google-cloud/compute`, with the
 * cluster's firewall rules. Loaded only when a gce machine is used.
 */
import { randomUUID } from 'node:crypto';
import {
  DriverError,
  waitFor,
  waitForSsh,
  type Driver,
  type DriverContext,
  type DriverImplementation,
  type HostAddresses,
  type HostState,
  type PortToOpen,
  type ResourceEntry,
  type SshTarget,
} from '../kit/index.js';
import { call, openClients, type GceClients, type GoogleFailure, type Instance, type Operation } from './client.js';
import type { GceOptions, GceState } from './definition.js';
import { clusterTag, desiredRules, ensureRule, publishedPortRuleNames, publishedPortRules, removeRuleIfUnused, type RuleOutcome, type RuleSpec } from './firewall.js';
import { addressesOf, GCE_NAME, instanceBody, labelValue, resolveImage, type ResolvedImage } from './instance.js';
import { waitOperation } from './operations.js';

type Context = DriverContext<GceOptions, GceState>;

const INSERT_DEADLINE_MS = 10 * 60_000;
const POWER_DEADLINE_MS = 10 * 60_000;
const HOST_KEYS_WAIT_MS = 60_000;
const DEFAULT_SOURCE_RANGE = '0.0.0.0/0';

function zonesOf(options: GceOptions): string[] {
  return options['gce-zones']?.length ? options['gce-zones'] : [options['gce-zone']];
}

/** One set of clients per endpoint and project for the whole command. */
const clientCache = new Map<string, Promise<GceClients>>();
function clientsFor(options: GceOptions, state: GceState): Promise<GceClients> {
  const project = state.project ?? options['gce-project'];
  const endpoint = options['gce-endpoint'];
  const key = `${endpoint ?? ''}|${project ?? ''}`;
  let clients = clientCache.get(key);
  if (!clients) {
    clients = openClients({ ...(project ? { project } : {}), ...(endpoint ? { endpoint } : {}) });
    clientCache.set(key, clients);
    clients.catch(() => clientCache.delete(key));
  }
  return clients;
}

function labelsFor(context: Context): Record<string, string> {
  const extra = Object.fromEntries((context.options['gce-label'] ?? []).map((kv) => kv.split('=', 2) as [string, string]));
  return {
    ...extra,
    'tmachine-managed': 'true',
    'tmachine-machine': labelValue(context.machineName),
    ...(context.cluster ? { 'tmachine-cluster': labelValue(context.cluster.name) } : {}),
  };
}

/** The firewall rules of the machine's cluster, each recorded (shared) the moment it exists. */
async function ensureFirewall(clients: GceClients, contexts: Context[]): Promise<string> {
  const first = contexts[0]!;
  const options = first.options;
  const tag = clusterTag(first.cluster?.name);
  const given = options['gce-source-range'];
  const rules = desiredRules({
    tag,
    cluster: first.cluster?.name,
    network: options['gce-network'],
    sourceRanges: given?.length ? given : [DEFAULT_SOURCE_RANGE],
    dataPathPort: first.cluster?.dataPathPort ?? 4789,
    encryptedOverlay: first.cluster?.encryptedOverlay ?? false,
    openPorts: options['gce-open-port'] ?? [],
  });
  for (const rule of rules) {
    first.report(`firewall rule ${rule.name}`);
    await ensureRecordedRule(clients, rule, contexts, tag);
  }
  // Ports a stack of the cluster published before (swarm deploy --open-ports): the new
  // members are users of those rules too, so the last machine to go removes them.
  for (const name of await publishedPortRuleNames(clients, tag, first.signal)) await recordRule(clients, name, contexts, tag);
  if (!given?.length) {
    first.note(`gce: SSH (22) and the engine (2376) are open to ${DEFAULT_SOURCE_RANGE} (both need a key or a client certificate); restrict them with --gce-source-range`);
  }
  return tag;
}

/** Puts a (shared) firewall rule into the machines' undo logs. */
async function recordRule(clients: GceClients, name: string, contexts: Context[], tag: string): Promise<void> {
  for (const context of contexts) {
    await context.undo.record({ kind: 'firewall', id: name, label: `firewall rule ${name}`, shared: true, details: { project: clients.project, tag } });
  }
}

/** Makes the rule right and records it for every machine, the moment it exists. */
async function ensureRecordedRule(clients: GceClients, rule: RuleSpec, contexts: Context[], tag: string): Promise<RuleOutcome> {
  let recorded = false;
  const outcome = await ensureRule(clients, rule, async () => {
    recorded = true;
    await recordRule(clients, rule.name, contexts, tag);
  }, contexts[0]!.signal);
  // A rule tmachine made earlier is shared: these machines are more users of it.
  if (!recorded && (outcome === 'kept' || outcome === 'updated')) await recordRule(clients, rule.name, contexts, tag);
  return outcome;
}

interface Placement {
  zone: string;
  machineType: string;
}

/**
 * Tries the machine types in order, each in the zones in order, until one has capacity.
 * `insert` makes the call and returns the operation; `recordMade` puts the instances in the
 * undo logs; `forgetIfGone` drops them again when the failed insert left nothing.
 */
async function placeWithFallback(
  clients: GceClients,
  first: Context,
  what: string,
  insert: (placement: Placement, requestId: string) => Promise<Operation>,
  recordMade: (placement: Placement) => Promise<void>,
  forgetIfGone: (placement: Placement) => Promise<void>,
): Promise<Placement> {
  const tried: Array<{ placement: Placement; failure: GoogleFailure }> = [];
  for (const machineType of first.options['gce-machine-type']) {
    for (const zone of zonesOf(first.options)) {
      const placement = { zone, machineType };
      first.report(`${what}: ${machineType} in ${zone}`);
      try {
        // One requestId per attempt: the SDK-level retries of this call make nothing twice.
        const op = await insert(placement, randomUUID());
        await recordMade(placement);
        await waitOperation(clients, op, { call: `${what} in ${zone}`, deadlineMs: INSERT_DEADLINE_MS, signal: first.signal });
        if (tried.length > 0) {
          const last = tried[tried.length - 1]!;
          first.note(`gce: ${tried.map((t) => `${t.placement.machineType} in ${t.placement.zone}`).join(', ')} had no capacity (${last.failure.reasons.find(Boolean) ?? 'capacity'}); ${what.startsWith('instances.bulkInsert') ? `created ${what.replace(/^instances\.\w+ /, '')} as` : 'used'} ${machineType} in ${zone}`);
        }
        return placement;
      } catch (error) {
        if (!(error instanceof DriverError) || error.kind !== 'capacity') throw error;
        tried.push({ placement, failure: { reasons: [capacityReason(error.message)], message: error.message } });
        await forgetIfGone(placement);
      }
    }
  }
  const last = tried[tried.length - 1];
  throw new DriverError('capacity', `gce ${what}: no capacity in ${tried.map((t) => `${t.placement.zone} (${t.placement.machineType})`).join(', ')}: ${last?.failure.message.replace(/^gce [^:]+: /, '') ?? ''}`, {
    hint: 'try other zones with --gce-zones, or other machine types with --gce-machine-type a,b',
  });
}

function capacityReason(message: string): string {
  return /(ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS|ZONE_RESOURCE_POOL_EXHAUSTED|VM_MIN_COUNT_NOT_REACHED|insufficientCapacity)/.exec(message)?.[1] ?? 'capacity';
}

async function getInstance(clients: GceClients, zone: string, name: string, signal?: AbortSignal): Promise<Instance | undefined> {
  try {
    const [instance] = await call(`instances.get ${name}`, clients, () => clients.instances.get({ project: clients.project, zone, instance: name }), signal);
    return instance;
  } catch (error) {
    if (error instanceof DriverError && error.kind === 'not-found') return undefined;
    throw error;
  }
}

/** After the insert: addresses into the state, then wait until sshd answers. */
async function finishCreate(clients: GceClients, context: Context, labels?: Record<string, string>): Promise<void> {
  const { state } = context;
  const instance = await getInstance(clients, state.zone!, state.instance!, context.signal);
  if (!instance) throw new DriverError('failed', `gce: instance ${state.instance ?? ''} is gone right after its insert finished`);
  if (labels) {
    // bulkInsert gives every instance the same labels; each gets its own machine label after.
    const [op] = await call(`instances.setLabels ${state.instance!}`, clients, () =>
      clients.instances.setLabels({ project: clients.project, zone: state.zone!, instance: state.instance!, requestId: randomUUID(), instancesSetLabelsRequestResource: { labels, labelFingerprint: instance.labelFingerprint ?? null } }), context.signal);
    await waitOperation(clients, op.latestResponse as Operation, { call: `instances.setLabels ${state.instance!}`, deadlineMs: POWER_DEADLINE_MS, signal: context.signal });
  }
  if (instance.id) state.instanceId = String(instance.id);
  Object.assign(state, addressesOf(instance));
  await context.saveState();
  const host = sshHost(context.options, state);
  if (!host) throw new DriverError('failed', `gce: instance ${state.instance ?? ''} has no address`);
  context.report(`waiting for SSH on ${host}`);
  await waitForSsh(context.machineName, host, 22, context.options['gce-ssh-timeout'] * 1_000, context.signal);
}

function sshHost(options: GceOptions, state: GceState): string | undefined {
  const internal = options['gce-use-internal-ip'] || options['gce-use-internal-ip-only'];
  return internal ? (state.privateIp ?? undefined) : (state.publicIp ?? state.privateIp ?? undefined);
}

function mapStatus(status: string): HostState {
  switch (status) {
    case 'PROVISIONING':
    case 'STAGING':
      return 'starting';
    case 'RUNNING':
      return 'running';
    case 'STOPPING':
    case 'SUSPENDING':
      return 'stopping';
    case 'TERMINATED':
    case 'STOPPED':
    case 'SUSPENDED':
      return 'stopped';
    case 'REPAIRING':
      return 'error';
    default:
      return 'unknown';
  }
}

class GceMachine implements Driver {
  private image: ResolvedImage | undefined;

  constructor(private readonly context: Context) {}

  private clients(): Promise<GceClients> {
    return clientsFor(this.context.options, this.context.state);
  }

  private located(): { zone: string; instance: string } {
    const { zone, instance } = this.context.state;
    if (!zone || !instance) throw new DriverError('not-found', `gce: machine ${this.context.machineName} has no instance recorded`);
    return { zone, instance };
  }

  async preCreateCheck(): Promise<void> {
    const name = this.context.machineName;
    if (!GCE_NAME.test(name)) {
      throw new DriverError('invalid-input', `machine name "${name}" is not a valid Compute Engine instance name`, { hint: 'use lowercase letters, digits and dashes, starting with a letter, at most 63 characters' });
    }
    const options = this.context.options;
    if (options['gce-spot'] && options['gce-preemptible']) throw new DriverError('invalid-input', '--gce-spot and --gce-preemptible exclude each other', { hint: 'spot is the newer form of preemptible; pass one' });
    if (options['gce-address'] && options['gce-use-internal-ip-only']) throw new DriverError('invalid-input', '--gce-address and --gce-use-internal-ip-only exclude each other', { hint: 'an internal-only instance has no external address' });
    const clients = await this.clients();
    this.image = await resolveImage(clients, options['gce-image'], this.context.signal);
    for (const zone of zonesOf(options)) {
      await call(`zones.get ${zone}`, clients, () => clients.zones.get({ project: clients.project, zone }), this.context.signal).catch((error: unknown) => {
        if (error instanceof DriverError && error.kind === 'not-found') throw new DriverError('invalid-input', `${error.message} (no zone ${zone} in project ${clients.project})`, { hint: 'check --gce-zone / --gce-zones' });
        throw error;
      });
    }
    const existing = await getInstance(clients, zonesOf(options)[0]!, name, this.context.signal);
    if (existing) throw new DriverError('already-exists', `gce: instance ${name} already exists in ${zonesOf(options)[0]!}`, { hint: 'choose another machine name, or remove that instance' });
  }

  async create(): Promise<void> {
    const context = this.context;
    const clients = await this.clients();
    const image = this.image ?? (await resolveImage(clients, context.options['gce-image'], context.signal));
    context.state.project = clients.project;
    const tag = await ensureFirewall(clients, [context]);
    context.state.targetTag = tag;
    await context.saveState();
    const name = context.machineName;
    const placement = await placeWithFallback(
      clients,
      context,
      `instances.insert ${name}`,
      async ({ zone, machineType }, requestId) => {
        const body = instanceBody({ options: context.options, zone, machineType, image, targetTag: tag, labels: labelsFor(context), sshPublicKeys: [context.sshPublicKey], bare: false });
        const [op] = await call(`instances.insert ${name}`, clients, () => clients.instances.insert({ project: clients.project, zone, requestId, instanceResource: { ...body, name, description: `tmachine machine ${name}` } }), context.signal);
        return op.latestResponse as Operation;
      },
      async ({ zone, machineType }) => {
        Object.assign(context.state, { zone, machineType, instance: name });
        await context.undo.record({ kind: 'instance', id: name, label: `instance ${name}`, details: { project: clients.project, zone } });
        await context.saveState();
      },
      async ({ zone }) => {
        if (!(await getInstance(clients, zone, name))) await context.undo.forget('instance', name);
      },
    );
    Object.assign(context.state, placement);
    await finishCreate(clients, context);
  }

  async removeResource(entry: ResourceEntry): Promise<void> {
    // Removal runs after a Ctrl-C too: it must not use the create's aborted signal.
    const clients = await this.clients();
    if (entry.kind === 'instance') {
      const zone = String(entry.details?.['zone'] ?? this.context.state.zone ?? '');
      let op: Operation;
      try {
        const [started] = await call(`instances.delete ${entry.id}`, clients, () => clients.instances.delete({ project: clients.project, zone, instance: entry.id, requestId: randomUUID() }));
        op = started.latestResponse as Operation;
      } catch (error) {
        if (error instanceof DriverError && error.kind === 'not-found') return;
        throw error;
      }
      await waitOperation(clients, op, { call: `instances.delete ${entry.id} in ${zone}`, deadlineMs: INSERT_DEADLINE_MS });
      return;
    }
    if (entry.kind === 'firewall') {
      const tag = String(entry.details?.['tag'] ?? this.context.state.targetTag ?? '');
      const self = this.context.state.zone && this.context.state.instance ? `${this.context.state.zone}/${this.context.state.instance}` : undefined;
      await removeRuleIfUnused(clients, entry.id, tag, self);
      return;
    }
    throw new DriverError('unsupported', `gce: cannot remove a resource of kind ${entry.kind}`);
  }

  private async power(action: 'start' | 'stop' | 'reset'): Promise<void> {
    const clients = await this.clients();
    const { zone, instance } = this.located();
    const [started] = await call(`instances.${action} ${instance}`, clients, () => clients.instances[action]({ project: clients.project, zone, instance, requestId: randomUUID() }), this.context.signal);
    await waitOperation(clients, started.latestResponse as Operation, { call: `instances.${action} ${instance} in ${zone}`, deadlineMs: POWER_DEADLINE_MS, signal: this.context.signal });
    if (action !== 'stop') await this.addresses();
  }

  start(): Promise<void> {
    return this.power('start');
  }

  stop(): Promise<void> {
    return this.power('stop');
  }

  async restart(): Promise<void> {
    await this.power('stop');
    await this.power('start');
  }

  kill(): Promise<void> {
    return this.power('reset');
  }

  async state(): Promise<HostState> {
    const clients = await this.clients();
    const { zone, instance } = this.located();
    const found = await getInstance(clients, zone, instance, this.context.signal);
    return found ? mapStatus(String(found.status ?? '')) : 'not-found';
  }

  /** Reads the addresses from the API; a changed one (after a stop and start) goes into the state. */
  async addresses(): Promise<HostAddresses> {
    const clients = await this.clients();
    const { zone, instance } = this.located();
    const found = await getInstance(clients, zone, instance, this.context.signal);
    if (!found) throw new DriverError('not-found', `gce: instance ${instance} does not exist in ${zone}`);
    const now = addressesOf(found);
    const state = this.context.state;
    if (now.publicIp !== state.publicIp || now.privateIp !== state.privateIp) {
      if (now.publicIp) state.publicIp = now.publicIp;
      else delete state.publicIp;
      if (now.privateIp) state.privateIp = now.privateIp;
      await this.context.saveState();
    }
    const reach = sshHost(this.context.options, state);
    if (!reach) throw new DriverError('unreachable', `gce: instance ${instance} has no address (is it stopped?)`, { hint: `tmachine start ${this.context.machineName}` });
    return { public: reach, ...(state.privateIp ? { private: state.privateIp } : {}) };
  }

  async sshTarget(): Promise<SshTarget> {
    const host = sshHost(this.context.options, this.context.state) ?? (await this.addresses()).public;
    return { host, port: 22, user: this.context.options['gce-username'] };
  }

  /**
   * A stack's published ports, one firewall rule each, from `sourceCidr` only, to the
   * cluster's network tag; each rule is recorded (shared) in this machine's undo log, so the
   * last machine of the cluster to go removes it. Every member calls this: after the first,
   * the rules are right and the others only record them.
   */
  async openPorts(ports: PortToOpen[], sourceCidr: string): Promise<string | undefined> {
    const context = this.context;
    const clients = await this.clients();
    const tag = context.state.targetTag ?? clusterTag(context.cluster?.name);
    const rules = publishedPortRules({ tag, cluster: context.cluster?.name, network: context.options['gce-network'], ports, cidr: sourceCidr });
    if (rules.length === 0) return undefined;
    const outcomes: RuleOutcome[] = [];
    for (const rule of rules) outcomes.push(await ensureRecordedRule(clients, rule, [context], tag));
    // The log is undone newest first, and a rule goes only once no instance carries its tag:
    // the instance, recorded before these rules, must stay the newest entry so it goes first.
    const entries = context.undo.entries();
    const instance = entries.find((e) => e.kind === 'instance');
    if (instance && entries[entries.length - 1] !== instance) await context.undo.record(instance);
    const changed = outcomes.some((o) => o === 'created' || o === 'updated');
    return `firewall rule${rules.length > 1 ? 's' : ''} ${rules.map((r) => r.name).join(', ')}: ${rules.map((r) => r.purpose.replace(/^port /, '')).join(', ')} from ${sourceCidr} to tag ${tag}${changed ? '' : ' (already open)'}`;
  }

  /** The host keys the guest published under hostkeys/ (guest attributes), before the first SSH contact. */
  async publishedHostKeys(): Promise<string[] | undefined> {
    const clients = await this.clients();
    const { zone, instance } = this.located();
    try {
      return await waitFor(
        async () => {
          try {
            const [attributes] = await call(`instances.getGuestAttributes ${instance}`, clients, () => clients.instances.getGuestAttributes({ project: clients.project, zone, instance, queryPath: 'hostkeys/' }), this.context.signal);
            const keys = (attributes.queryValue?.items ?? []).filter((i) => i.namespace === 'hostkeys' && i.key && i.value).map((i) => `${i.key!} ${i.value!}`);
            return keys.length > 0 ? keys : undefined;
          } catch (error) {
            // Not published yet: the guest agent writes them shortly after boot.
            if (error instanceof DriverError && error.kind === 'not-found') return undefined;
            throw error;
          }
        },
        { what: `gce: host keys of ${instance} in its guest attributes`, deadlineMs: HOST_KEYS_WAIT_MS, intervalMs: 500, maxIntervalMs: 5_000, signal: this.context.signal },
      );
    } catch (error) {
      if (!(error instanceof DriverError) || (error.kind !== 'timeout' && error.kind !== 'invalid-input')) throw error;
      this.context.note(`gce: ${instance} published no host keys in its guest attributes (${error.kind === 'timeout' ? `not within ${HOST_KEYS_WAIT_MS / 1_000}s` : error.message}); pinning the key it shows on first contact`);
      return undefined;
    }
  }
}

/** N identical machines in one bulkInsert (`swarm bootstrap`'s workers). */
async function createMany(contexts: Context[]): Promise<void> {
  const first = contexts[0];
  if (!first) return;
  const clients = await clientsFor(first.options, first.state);
  const image = await resolveImage(clients, first.options['gce-image'], first.signal);
  const tag = await ensureFirewall(clients, contexts);
  for (const context of contexts) {
    const name = context.machineName;
    if (!GCE_NAME.test(name)) throw new DriverError('invalid-input', `machine name "${name}" is not a valid Compute Engine instance name`, { hint: 'use lowercase letters, digits and dashes, starting with a letter' });
    Object.assign(context.state, { project: clients.project, targetTag: tag });
    await context.saveState();
  }
  const names = contexts.map((c) => c.machineName);
  const what = `instances.bulkInsert ${names.join(', ')}`;
  const placement = await placeWithFallback(
    clients,
    first,
    what,
    async ({ zone, machineType }, requestId) => {
      // The properties are shared, so every machine's key goes into the one ssh-keys value.
      const props = instanceBody({ options: first.options, zone, machineType, image, targetTag: tag, labels: Object.fromEntries(Object.entries(labelsFor(first)).filter(([k]) => k !== 'tmachine-machine')), sshPublicKeys: contexts.map((c) => c.sshPublicKey), bare: true });
      const [op] = await call(what, clients, () =>
        clients.instances.bulkInsert({
          project: clients.project,
          zone,
          requestId,
          bulkInsertInstanceResourceResource: { count: contexts.length, minCount: contexts.length, perInstanceProperties: Object.fromEntries(names.map((n) => [n, { name: n }])), instanceProperties: props },
        }), first.signal);
      return op.latestResponse as Operation;
    },
    async ({ zone, machineType }) => {
      for (const context of contexts) {
        Object.assign(context.state, { zone, machineType, instance: context.machineName });
        await context.undo.record({ kind: 'instance', id: context.machineName, label: `instance ${context.machineName}`, details: { project: clients.project, zone } });
        await context.saveState();
      }
    },
    async ({ zone }) => {
      for (const context of contexts) if (!(await getInstance(clients, zone, context.machineName))) await context.undo.forget('instance', context.machineName);
    },
  );
  await Promise.all(contexts.map(async (context) => {
    Object.assign(context.state, placement);
    await finishCreate(clients, context, labelsFor(context));
  }));
}

export const implementation: DriverImplementation<GceOptions, GceState> = {
  open: (context) => new GceMachine(context),
  createMany,
};
