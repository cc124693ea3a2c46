/**
 * The desired cluster: every node by name with its role, labels and how to create it, plus
 * the swarm and engine options. `swarm bootstrap` converges the real cluster towards this,
 * whether it came from a cluster file or from flags.
 */
import { TmachineError } from '../errors.js';
import { MACHINE_NAME, type EngineOptions } from '../store/machine-record.js';
import type { ClusterSpec, MountSpec, NodeGroupSpec, NodeRole, RegistrySpec, SwarmOptions } from './cluster-file.js';

export interface DesiredNode {
  name: string;
  role: NodeRole;
  labels: Record<string, string>;
  /** How to create the machine when it is missing; null: it must already exist. Options are keyed by flag name (`ec2-region`). */
  create: { driver: string; options: Record<string, unknown> } | null;
}

/** The store's engine options; `install` left out means the driver's default. */
export type DesiredEngine = Omit<EngineOptions, 'install' | 'port'> & { install?: EngineOptions['install'] };

export interface DesiredCluster {
  name: string;
  /** Managers first; the first manager is where the swarm is initialised. */
  nodes: DesiredNode[];
  swarm: SwarmOptions;
  engine: DesiredEngine;
  registries: RegistrySpec[];
  mounts: MountSpec[];
}

export interface ClusterFlags {
  driver?: string;
  /** Keyed by flag name, as the driver's flags are (`docker-image`). */
  driverOptions?: Record<string, unknown>;
  managers?: number;
  workers?: number;
  /** Default "tm". */
  prefix?: string;
  /** Machines that already exist (`--manager m1 --worker w1`). */
  managerNames?: string[];
  workerNames?: string[];
  /** An even manager count becomes an error instead of a warning. */
  strict?: boolean;
  swarm?: Partial<SwarmOptions>;
  engine?: Partial<DesiredEngine>;
}

export const DEFAULT_PREFIX = 'tm';

/** Why an even manager count is wrong: it tolerates no more failures than one manager fewer. */
export function evenManagerMessage(count: number): string {
  if (count === 2) return '2 managers cannot keep quorum after losing one; use an odd number (1, 3, 5)';
  const tolerated = count / 2 - 1;
  return `${count} managers keep quorum after losing only ${tolerated}, as ${count - 1} do; use an odd number (${count - 1} or ${count + 1})`;
}

/** Docker's recommended maximum: every manager adds Raft traffic and, past 7, no fault tolerance worth it. */
export const MAX_MANAGERS = 7;

export function tooManyManagersMessage(count: number): string {
  return `${count} managers is more than Docker's recommended maximum of ${MAX_MANAGERS} (every manager adds Raft traffic); use 3, 5 or 7 and make the rest workers`;
}

/** Cluster-file driver options omit the driver prefix (`region`); flags and drivers use it (`ec2-region`). */
export function driverOptionKey(driver: string, key: string): string {
  return key.startsWith(`${driver}-`) ? key : `${driver}-${key}`;
}

/**
 * Every node the spec names, with the field that names it (for messages about the file).
 * Nodes listed by name come before generated ones: a host that already exists may already
 * hold the swarm.
 */
export function expandNodes(spec: ClusterSpec): Array<{ node: DesiredNode; source: Array<string | number> }> {
  const out: Array<{ node: DesiredNode; source: Array<string | number> }> = [];
  const numbers = new Map<string, number>();
  const generate = (role: NodeRole, groups: NodeGroupSpec[], field: 'managers' | 'workers') => {
    groups.forEach((group, i) => {
      const driver = group.driver?.name ?? spec.driver?.name;
      if (!driver) throw new TmachineError(`${spec.file}: ${field}[${i}] creates machines but names no driver`);
      // A group's own driver of another kind does not inherit the cluster driver's options.
      const inherited = spec.driver && spec.driver.name === driver ? spec.driver.options : {};
      const options = prefixOptions(driver, { ...inherited, ...group.driver?.options });
      const base = `${group.namePrefix ?? spec.name}-${role}`;
      for (let n = 0; n < group.count; n++) {
        const number = (numbers.get(base) ?? 0) + 1;
        numbers.set(base, number);
        const labels = { ...spec.labels, ...group.labels };
        out.push({ node: { name: `${base}-${number}`, role, labels, create: { driver, options: { ...options } } }, source: [field, i] });
      }
    });
  };
  const listed = (role: NodeRole) =>
    spec.nodes.forEach((n, i) => {
      if (n.role !== role) return;
      const create = n.driver ? { driver: n.driver.name, options: prefixOptions(n.driver.name, n.driver.options) } : null;
      out.push({ node: { name: n.name, role, labels: { ...spec.labels, ...n.labels }, create }, source: ['nodes', i, 'name'] });
    });
  listed('manager');
  generate('manager', spec.managers, 'managers');
  listed('worker');
  generate('worker', spec.workers, 'workers');
  return out;
}

export function desiredFromSpec(spec: ClusterSpec): DesiredCluster {
  const { installUrl, sha256, ...engine } = spec.engine;
  return {
    name: spec.name,
    nodes: expandNodes(spec).map((e) => e.node),
    swarm: { ...spec.swarm },
    engine: {
      ...engine,
      ...(installUrl && { installUrl }),
      ...(sha256 && { bundleSha256: sha256 }),
      registryCAs: spec.registries.map((r) => ({ registry: r.host, caFile: r.ca })),
    },
    registries: spec.registries,
    mounts: spec.mounts,
  };
}

/**
 * The cluster `swarm bootstrap --managers N --workers N` (and `--manager NAME`) asks for.
 * An even manager count comes back as a warning for the caller to print, unless `strict`.
 */
export function desiredFromFlags(flags: ClusterFlags): { cluster: DesiredCluster; warning?: string } {
  const prefix = flags.prefix ?? DEFAULT_PREFIX;
  if (!MACHINE_NAME.test(prefix)) {
    throw new TmachineError(`invalid --prefix "${prefix}"`, { hint: 'use letters, digits, "-" and "." only, starting with a letter or digit' });
  }
  const managerCount = flags.managers ?? 0;
  const workerCount = flags.workers ?? 0;
  for (const [flag, n] of [['--managers', managerCount], ['--workers', workerCount]] as const) {
    if (!Number.isInteger(n) || n < 0) throw new TmachineError(`${flag} takes a whole number (0 or more), not ${n}`);
  }
  if (managerCount + workerCount > 0 && !flags.driver) {
    throw new TmachineError('--driver is needed to create machines', { hint: 'or name existing machines with --manager and --worker' });
  }

  const create = flags.driver ? { driver: flags.driver, options: { ...flags.driverOptions } } : null;
  const generated = (role: NodeRole, count: number): DesiredNode[] =>
    Array.from({ length: count }, (_, i) => ({ name: `${prefix}-${role}-${i + 1}`, role, labels: {}, create: create && { ...create, options: { ...create.options } } }));
  const existing = (role: NodeRole, names: string[] = []): DesiredNode[] =>
    names.map((name) => ({ name, role, labels: {}, create: null }));
  const nodes = [
    ...existing('manager', flags.managerNames),
    ...generated('manager', managerCount),
    ...existing('worker', flags.workerNames),
    ...generated('worker', workerCount),
  ];

  const seen = new Set<string>();
  for (const { name } of nodes) {
    if (!MACHINE_NAME.test(name)) {
      throw new TmachineError(`invalid machine name "${name}"`, {
        hint: 'use letters, digits, "-" and "." only, starting with a letter or digit, at most 63 characters',
      });
    }
    if (seen.has(name)) throw new TmachineError(`machine "${name}" is named twice`, { hint: 'each machine is either one manager or one worker' });
    seen.add(name);
  }

  const managers = nodes.filter((n) => n.role === 'manager').length;
  if (managers === 0) throw new TmachineError('a swarm needs at least one manager', { hint: 'pass --managers N or --manager NAME' });
  let warning: string | undefined;
  const problem = managers > MAX_MANAGERS ? tooManyManagersMessage(managers) : managers % 2 === 0 ? evenManagerMessage(managers) : undefined;
  if (problem) {
    if (flags.strict) throw new TmachineError(problem, { hint: 'without --strict this is a warning' });
    warning = problem;
  }

  const cluster: DesiredCluster = {
    name: prefix,
    nodes,
    swarm: { advertise: 'private', encryptedOverlay: false, ...flags.swarm },
    engine: {
      opts: [],
      env: [],
      labels: [],
      insecureRegistries: [],
      registryMirrors: [],
      registryCAs: [],
      ...flags.engine,
    },
    registries: [],
    mounts: [],
  };
  return warning === undefined ? { cluster } : { cluster, warning };
}

function prefixOptions(driver: string, options: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).map(([k, v]) => [driverOptionKey(driver, k), v]));
}
