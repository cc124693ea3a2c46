/**
 * The cluster file (SPEC §3) states what the cluster must be. All of it is checked here,
 * before anything is created, and every error is one line naming file:line and the field,
 * because what the user fixes is the file, not the command.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { optionIssues, resolveRawOptions, type AnyDriverDefinition as DriverDefinition, type DriverFlagValue } from '../../drivers/kit/index.js';
import { DriverError, TmachineError } from '../errors.js';
import { MACHINE_NAME, type EngineOptions } from '../store/machine-record.js';
import { driverOptionKey, evenManagerMessage, expandNodes, MAX_MANAGERS, tooManyManagersMessage } from './desired-state.js';

export type NodeRole = 'manager' | 'worker';
export type EngineInstall = EngineOptions['install'];

export interface DriverSpec {
  name: string;
  /** Driver options as written (kebab-case, without the driver prefix: `instance-type`). */
  options: Record<string, DriverFlagValue>;
}

export interface NodeGroupSpec {
  count: number;
  labels: Record<string, string>;
  /** Overrides the cluster's driver; without a name it only adds or replaces options. */
  driver?: { name?: string; options: Record<string, DriverFlagValue> };
  namePrefix?: string;
}

/** A host listed by name: created with its driver when given, otherwise it must already be a machine. */
export interface ExistingNodeSpec {
  name: string;
  role: NodeRole;
  driver?: DriverSpec;
  labels: Record<string, string>;
}

export interface EngineSpec {
  install?: EngineInstall;
  version?: string;
  /** A URL, or an absolute path (relative paths are resolved against the cluster file). */
  bundle?: string;
  sha256?: string;
  installUrl?: string;
  /** `key=value` strings, as the store's engine options hold them. */
  opts: string[];
  env: string[];
  labels: string[];
  insecureRegistries: string[];
  registryMirrors: string[];
  storageDriver?: string;
  /** `migrate-tls: true`, as --engine-migrate-tls. */
  migrateTls?: boolean;
}

export interface RegistrySpec {
  /** `host` or `host:port`, as the engine's certs.d directory names it. */
  host: string;
  /** Absolute path of the CA certificate. */
  ca: string;
}

export interface MountSpec {
  source: string;
  target: string;
  options?: string;
}

export interface SwarmOptions {
  advertise: 'private' | 'public';
  dataPathPort?: number;
  mtu?: number;
  encryptedOverlay: boolean;
}

export interface ClusterSpec {
  /** The file as given, for messages. */
  file: string;
  name: string;
  driver?: DriverSpec;
  engine: EngineSpec;
  /** `managers: 3` is read as one group of 3. */
  managers: NodeGroupSpec[];
  workers: NodeGroupSpec[];
  nodes: ExistingNodeSpec[];
  registries: RegistrySpec[];
  mounts: MountSpec[];
  swarm: SwarmOptions;
  /** Applied to every node. */
  labels: Record<string, string>;
}

export interface LoadOptions {
  /**
   * Checks every driver block's options against that driver's flags (unknown option, wrong
   * type), so a misspelt option fails here instead of being dropped at create. Pass
   * `loadDriverDefinition` from drivers/registry.js.
   */
  driverDefinition?: (name: string) => Promise<DriverDefinition>;
}

// ---------------------------------------------------------------------------------------
// Schema. Each part names what it wants in words; the message becomes "expected <that>".

const KEBAB = /^[a-z0-9]+(-[a-z0-9]+)*$/;

function strict<T extends z.ZodRawShape>(shape: T) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? allowed : 'a map') });
}

function int(what: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return z.number({ error: what }).int({ error: what }).min(min, { error: what }).max(max, { error: what });
}

const text = z.string({ error: 'a string' }).min(1, { error: 'a non-empty string' });
const machineName = z.string({ error: 'a machine name' }).regex(MACHINE_NAME, {
  error: 'a machine name (letters, digits, "-" and ".", starting with a letter or digit, at most 63 characters)',
});
const scalar = z
  .union([z.string(), z.number(), z.boolean()], { error: 'a string, number or boolean' })
  .transform((v) => String(v));
const labels = z.record(z.string(), scalar, { error: 'a map of labels' });
/** Engine opts/env/labels: a map, or Docker Machine's list of `key=value`; stored as the list. */
const keyValues = z
  .union(
    [z.record(z.string(), scalar), z.array(z.string().regex(/^[^=]+=/, { error: 'a key=value string' }))],
    { error: 'a map or a list of key=value strings' },
  )
  .transform((v) => (Array.isArray(v) ? v : Object.entries(v).map(([k, val]) => `${k}=${val}`)));
const strings = z.array(text, { error: 'a list of strings' });
const optionValue = z.union([z.string(), z.number(), z.boolean(), z.array(z.string({ error: 'a string' }))], {
  error: 'a string, number, boolean or list of strings',
});

const driverName = z.string({ error: 'a driver name' }).min(1, { error: 'a driver name' });
const driverBlock = z.object({ name: driverName }, { error: 'a map with the driver name and its options' }).catchall(optionValue);
const driverOverride = z.object({ name: driverName.optional() }, { error: 'a map of driver options' }).catchall(optionValue);

const groupSchema = strict({
  count: int('a positive integer', 1),
  labels: labels.optional(),
  driver: driverOverride.optional(),
  'name-prefix': machineName.optional(),
});
const countOrGroups = z.union([int('a count (0 or more) or a list of node groups', 0), z.array(groupSchema)], {
  error: 'a count (0 or more) or a list of node groups',
});

const fileSchema = strict({
  name: machineName,
  driver: driverBlock.optional(),
  engine: strict({
    install: z.enum(['bundle', 'script', 'package', 'none'], { error: 'one of bundle, script, package, none' }).optional(),
    version: z.string({ error: 'a quoted version string ("27.3.1")' }).min(1, { error: 'a version' }).optional(),
    bundle: text.optional(),
    sha256: z.string({ error: 'a SHA-256' }).regex(/^[0-9a-f]{64}$/i, { error: 'a SHA-256 (64 hex digits)' }).optional(),
    'install-url': z.url({ error: 'a URL' }).optional(),
    opts: keyValues.optional(),
    env: keyValues.optional(),
    labels: keyValues.optional(),
    'insecure-registries': strings.optional(),
    'registry-mirrors': strings.optional(),
    'storage-driver': text.optional(),
    'migrate-tls': z.boolean({ error: 'true or false' }).optional(),
  }).optional(),
  managers: countOrGroups.optional(),
  workers: countOrGroups.optional(),
  registries: z
    .array(
      strict({
        host: z.string({ error: 'host:port' }).regex(/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:\d{1,5})?$/, { error: 'host:port' }),
        ca: text,
      }),
      { error: 'a list of registries' },
    )
    .optional(),
  mounts: z
    .array(
      strict({
        source: z.string({ error: 'server:/path' }).regex(/^[^\s:]+:\/\S*$/, { error: 'server:/path' }),
        target: z.string({ error: 'an absolute path' }).regex(/^\/\S*$/, { error: 'an absolute path' }),
        options: text.optional(),
      }),
      { error: 'a list of mounts' },
    )
    .optional(),
  nodes: z
    .array(strict({ name: machineName, driver: driverBlock.optional(), role: z.enum(['manager', 'worker'], { error: 'manager or worker' }), labels: labels.optional() }), {
      error: 'a list of nodes',
    })
    .optional(),
  advertise: z.enum(['private', 'public'], { error: 'private or public' }).optional(),
  'data-path-port': int('a port from 1024 to 49151', 1024, 49151).optional(),
  mtu: int('an MTU from 576 to 9216', 576, 9216).optional(),
  'encrypted-overlay': z.boolean({ error: 'true or false' }).optional(),
  labels: labels.optional(),
});
type RawFile = z.output<typeof fileSchema>;
type RawGroup = z.output<typeof groupSchema>;
type RawDriver = z.output<typeof driverOverride>;

// ---------------------------------------------------------------------------------------
// Positions: every error is reported at the YAML node of its path.

type FieldPath = ReadonlyArray<string | number>;

class Located {
  constructor(
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  /**
   * Walks the path as far as the document goes. A map entry is reported at its key's line;
   * a missing key at the line of the map that should hold it.
   */
  find(fieldPath: FieldPath): { line: number; depth: number; value?: unknown } {
    let node: unknown = this.doc.contents;
    let line = this.lineOf(node) ?? 1;
    let depth = 0;
    for (const key of fieldPath) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
        if (!pair) return { line, depth };
        line = this.lineOf(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof key === 'number' && key < node.items.length) {
        node = node.items[key];
        line = this.lineOf(node) ?? line;
      } else {
        return { line, depth };
      }
      depth++;
    }
    return { line, depth, value: isNode(node) ? node.toJS(this.doc) : node };
  }

  error(fieldPath: FieldPath, message: string, hint?: string): TmachineError {
    const { line, depth } = this.find(fieldPath);
    return this.errorAt(line, fieldName(fieldPath.slice(0, Math.max(depth, 1))), message, hint);
  }

  errorAt(line: number, field: string, message: string, hint?: string): TmachineError {
    return new TmachineError(`${this.file}:${line}: ${field ? `${field}: ` : ''}${message}`, hint ? { hint } : {});
  }

  private lineOf(node: unknown): number | undefined {
    const offset = isNode(node) ? node.range?.[0] : undefined;
    return offset === undefined ? undefined : this.lines.linePos(offset).line;
  }
}

function fieldName(fieldPath: FieldPath): string {
  return fieldPath.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
}

function describe(value: unknown): string {
  if (value === undefined || value === null) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

// ---------------------------------------------------------------------------------------

export async function loadClusterFile(file: string, options: LoadOptions = {}): Promise<ClusterSpec> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (error) {
    throw new TmachineError(`${file}: cannot read the cluster file (${(error as NodeJS.ErrnoException).code ?? String(error)})`, {
      cause: error,
    });
  }
  const { spec, at } = parse(text, file);
  if (options.driverDefinition) await checkDriverOptions(spec, at, options.driverDefinition);
  return spec;
}

/**
 * Parses and validates a cluster file's text; `fileName` is used in messages and to resolve
 * the relative paths in it (registry CAs, a local engine bundle), which must exist.
 */
export function parseClusterFile(text: string, fileName: string): ClusterSpec {
  return parse(text, fileName).spec;
}

function parse(text: string, file: string): { spec: ClusterSpec; at: Located } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const syntax = doc.errors[0];
  if (syntax) {
    const line = syntax.linePos?.[0].line ?? 1;
    const what =
      syntax.code === 'MULTIPLE_DOCS'
        ? 'more than one YAML document in the file'
        : (syntax.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new TmachineError(`${file}:${line}: YAML syntax error: ${what}`);
  }
  const at = new Located(file, doc, lines);
  if (doc.contents === null) throw at.errorAt(1, '', 'the file is empty; expected a map of cluster fields (name, driver, managers, ...)');

  const result = fileSchema.safeParse(doc.toJS());
  if (!result.success) throw zodError(result.error.issues, at);
  const spec = toSpec(result.data, file);
  checkSpec(spec, at);
  return { spec, at };
}

/** The first problem in file order, as one line. */
function zodError(issues: readonly z.core.$ZodIssue[], at: Located): TmachineError {
  const errors = issues.flatMap((issue) => issueErrors(issue, [], at));
  errors.sort((a, b) => a.line - b.line);
  return errors[0]?.error ?? at.errorAt(1, '', 'invalid cluster file');
}

function issueErrors(issue: z.core.$ZodIssue, prefix: FieldPath, at: Located): Array<{ line: number; error: TmachineError }> {
  const fieldPath = [...prefix, ...issue.path.map((k) => (typeof k === 'symbol' ? String(k) : k))];
  if (issue.code === 'invalid_union') {
    // Report inside the branch that got past its first check (a list for "count or list").
    const branch = issue.errors.find((b) => b.some((i) => i.path.length > 0));
    if (branch) return branch.flatMap((i) => issueErrors(i, fieldPath, at));
  }
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const keyPath = [...fieldPath, key];
      const { line } = at.find(keyPath);
      return { line, error: at.errorAt(line, fieldName(keyPath), 'unknown field', `allowed: ${issue.message}`) };
    });
  }
  const found = at.find(fieldPath);
  const expected = fieldPath.length === 0 ? 'a map of cluster fields (name, driver, managers, ...)' : issue.message;
  const message =
    found.depth < fieldPath.length ? `missing; expected ${expected}` : `expected ${expected}, got ${describe(found.value)}`;
  return [{ line: found.line, error: at.errorAt(found.line, fieldName(fieldPath), message) }];
}

function toSpec(raw: RawFile, file: string): ClusterSpec {
  const dir = path.dirname(path.resolve(file));
  const engine = raw.engine ?? {};
  const bundle = engine.bundle && !/^https?:\/\//.test(engine.bundle) ? path.resolve(dir, engine.bundle) : engine.bundle;
  return {
    file,
    name: raw.name,
    ...(raw.driver && { driver: splitDriver(raw.driver, raw.driver.name) }),
    engine: {
      ...(engine.install && { install: engine.install }),
      ...(engine.version && { version: engine.version }),
      ...(bundle && { bundle }),
      ...(engine.sha256 && { sha256: engine.sha256.toLowerCase() }),
      ...(engine['install-url'] && { installUrl: engine['install-url'] }),
      opts: engine.opts ?? [],
      env: engine.env ?? [],
      labels: engine.labels ?? [],
      insecureRegistries: engine['insecure-registries'] ?? [],
      registryMirrors: engine['registry-mirrors'] ?? [],
      ...(engine['storage-driver'] && { storageDriver: engine['storage-driver'] }),
      ...(engine['migrate-tls'] && { migrateTls: true }),
    },
    managers: toGroups(raw.managers),
    workers: toGroups(raw.workers),
    nodes: (raw.nodes ?? []).map((n) => ({
      name: n.name,
      role: n.role,
      ...(n.driver && { driver: splitDriver(n.driver, n.driver.name) }),
      labels: n.labels ?? {},
    })),
    registries: (raw.registries ?? []).map((r) => ({ host: r.host, ca: path.resolve(dir, r.ca) })),
    mounts: (raw.mounts ?? []).map((m) => ({ source: m.source, target: m.target, ...(m.options && { options: m.options }) })),
    swarm: {
      advertise: raw.advertise ?? 'private',
      ...(raw['data-path-port'] !== undefined && { dataPathPort: raw['data-path-port'] }),
      ...(raw.mtu !== undefined && { mtu: raw.mtu }),
      encryptedOverlay: raw['encrypted-overlay'] ?? false,
    },
    labels: raw.labels ?? {},
  };
}

function toGroups(raw: number | RawGroup[] | undefined): NodeGroupSpec[] {
  if (raw === undefined) return [];
  if (typeof raw === 'number') return raw === 0 ? [] : [{ count: raw, labels: {} }];
  return raw.map((g) => ({
    count: g.count,
    labels: g.labels ?? {},
    ...(g.driver && { driver: splitDriver(g.driver, g.driver.name) }),
    ...(g['name-prefix'] && { namePrefix: g['name-prefix'] }),
  }));
}

function splitDriver<N extends string | undefined>(raw: RawDriver, name: N): { name: N; options: Record<string, DriverFlagValue> } {
  const { name: _name, ...options } = raw;
  return { name, options: options as Record<string, DriverFlagValue> };
}

/** Driver blocks with where they are and the driver that reads them. */
function driverBlocks(spec: ClusterSpec): Array<{ path: FieldPath; name: string | undefined; options: Record<string, DriverFlagValue> }> {
  const blocks: Array<{ path: FieldPath; name: string | undefined; options: Record<string, DriverFlagValue> }> = [];
  if (spec.driver) blocks.push({ path: ['driver'], ...spec.driver });
  for (const role of ['managers', 'workers'] as const) {
    spec[role].forEach((g, i) => {
      if (g.driver) blocks.push({ path: [role, i, 'driver'], name: g.driver.name ?? spec.driver?.name, options: g.driver.options });
    });
  }
  spec.nodes.forEach((n, i) => {
    if (n.driver) blocks.push({ path: ['nodes', i, 'driver'], ...n.driver });
  });
  return blocks;
}

/** What the schema cannot say: drivers present, names unique, an odd manager count, files there. */
function checkSpec(spec: ClusterSpec, at: Located): void {
  for (const block of driverBlocks(spec)) {
    for (const key of Object.keys(block.options)) {
      if (!KEBAB.test(key)) throw at.error([...block.path, key], `driver options are written in kebab-case (${kebab(key)})`);
    }
  }

  for (const role of ['managers', 'workers'] as const) {
    const unnamed = spec[role].findIndex((g) => !(g.driver?.name ?? spec.driver?.name));
    if (unnamed >= 0) throw at.error([role, unnamed], 'creates machines but names no driver', 'add `driver: { name: ... }` at the top of the file or to this group');
  }

  const placed = expandNodes(spec).map((entry) => ({ ...entry, where: at.find(entry.source) }));
  for (const { node, source } of placed) {
    if (MACHINE_NAME.test(node.name)) continue;
    const group = spec[source[0] === 'managers' ? 'managers' : 'workers'][Number(source[1])];
    throw at.error(group?.namePrefix ? [...source, 'name-prefix'] : ['name'], `makes the machine name "${node.name}", which is not a valid machine name`, 'at most 63 characters');
  }
  const seen = new Map<string, (typeof placed)[number]>();
  for (const entry of [...placed].sort((a, b) => a.where.line - b.where.line)) {
    const first = seen.get(entry.node.name);
    if (first) {
      const firstField = fieldName(first.source.slice(0, Math.max(first.where.depth, 1)));
      throw at.error(entry.source, `node name "${entry.node.name}" is used twice (also by ${firstField} on line ${first.where.line})`);
    }
    seen.set(entry.node.name, entry);
  }

  const managers = placed.filter((p) => p.node.role === 'manager');
  // Reported on `managers:` when the file has it; otherwise on the node that made the count.
  const countPath: FieldPath = at.find(['managers']).depth === 1 ? ['managers'] : (managers.at(-1)?.source.slice(0, 2) ?? ['managers']);
  if (managers.length === 0) throw at.error(countPath, 'a swarm needs at least one manager');
  if (managers.length > MAX_MANAGERS) throw at.error(countPath, tooManyManagersMessage(managers.length));
  if (managers.length % 2 === 0) throw at.error(countPath, evenManagerMessage(managers.length));

  spec.registries.forEach((r, i) => {
    if (!isFile(r.ca)) throw at.error(['registries', i, 'ca'], `CA file not found: ${r.ca}`);
  });
  if (spec.engine.bundle && path.isAbsolute(spec.engine.bundle) && !isFile(spec.engine.bundle)) {
    throw at.error(['engine', 'bundle'], `bundle file not found: ${spec.engine.bundle}`);
  }
}

async function checkDriverOptions(
  spec: ClusterSpec,
  at: Located,
  load: (name: string) => Promise<DriverDefinition>,
): Promise<void> {
  for (const block of driverBlocks(spec)) {
    if (!block.name) continue;
    let definition: DriverDefinition;
    try {
      definition = await load(block.name);
    } catch (error) {
      if (!(error instanceof DriverError)) throw error;
      const namePath = at.find([...block.path, 'name']).depth === block.path.length + 1 ? [...block.path, 'name'] : ['driver', 'name'];
      throw at.error(namePath, error.message, error.hint);
    }
    const prefix = `${definition.name}-`;
    const given: Record<string, unknown> = {};
    const keyOf = new Map<string, string>();
    for (const [key, value] of Object.entries(block.options)) {
      const flagName = driverOptionKey(block.name, key);
      const flag = definition.flags.find((f) => f.name === flagName || f.aliases?.includes(flagName));
      if (!flag) {
        const allowed = definition.flags.map((f) => (f.name.startsWith(prefix) ? f.name.slice(prefix.length) : f.name));
        throw at.error([...block.path, key], `unknown option of driver ${definition.name}`, `allowed: ${allowed.join(', ')}`);
      }
      const ok =
        flag.type === 'string' ? !Array.isArray(value)
        : flag.type === 'string[]' ? Array.isArray(value) || typeof value === 'string'
        : flag.type === 'number' ? typeof value === 'number'
        : typeof value === 'boolean';
      const what = { string: 'a string', 'string[]': 'a list of strings', number: 'a number', boolean: 'true or false' }[flag.type];
      if (!ok) throw at.error([...block.path, key], `expected ${what}, got ${describe(value)}`);
      given[flag.name] = value;
      keyOf.set(flag.name, key);
    }
    // The driver's own checks (a CIDR, a port, a size), reported at the option's line. Only
    // what this block states: the rest is resolved, and checked, at create.
    const blockFlags = definition.flags.filter((f) => keyOf.has(f.name));
    const raw = resolveRawOptions(blockFlags, given);
    const parsed = definition.optionsSchema.safeParse(raw);
    const issue = parsed.success ? undefined : optionIssues(parsed.error).find((i) => keyOf.has(i.flag));
    if (issue) {
      const value = issue.at.reduce<unknown>((v, k) => (v as Record<string | number, unknown> | undefined)?.[k], raw[issue.flag]);
      const hint = blockFlags.find((f) => f.name === issue.flag)?.description;
      throw at.error([...block.path, keyOf.get(issue.flag)!, ...issue.at], `${issue.message}, got ${describe(value)}`, hint);
    }
  }
}

function kebab(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').replace(/_/g, '-').toLowerCase();
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
