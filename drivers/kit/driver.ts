/**
 * The driver interface (SPEC §5), after libmachine's: a driver makes, breaks and reports on
 * hosts. Everything on the host (engine, certificates, firewall, swarm) is tmachine's job
 * over SSH, so a driver never provisions anything itself.
 *
 * A driver package (built in under drivers/<name>/, or an npm package
 * `tmachine-driver-<name>`) exports `definition`, made with `defineDriver()`. The definition
 * is cheap (names, flags, schemas); `load()` imports the implementation and any cloud SDK,
 * only when a machine of that driver is used.
 */
import type { z } from 'zod';

export type DriverFlagType = 'string' | 'number' | 'boolean' | 'string[]';
export type DriverFlagValue = string | number | boolean | string[];

export interface DriverFlag {
  /** Full flag name without dashes, prefixed with the driver name: "ec2-region". */
  name: string;
  type: DriverFlagType;
  description: string;
  default?: DriverFlagValue;
  /** Environment variable that supplies the value when the flag is not given. */
  env?: string;
  /** Other spellings accepted (Docker Machine's: "amazonec2-region"). */
  aliases?: string[];
  /** Never written to the store or printed (cloud secrets). */
  secret?: boolean;
}

/** Raw flag values after env/default resolution and type coercion, before the schema. */
export type RawDriverOptions = Record<string, DriverFlagValue | undefined>;

export type HostState = 'running' | 'stopped' | 'paused' | 'starting' | 'stopping' | 'error' | 'not-found' | 'unknown';

export interface HostAddresses {
  /** The address tmachine reaches (SSH, engine API). */
  public: string;
  /** The address other members use (swarm advertise/data path) where the driver has one. */
  private?: string;
}

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** Key file the driver supplies (generic driver); otherwise the machine's own key. */
  privateKeyPath?: string;
}

/**
 * One resource a driver made (container, volume, instance, key pair, security group,
 * firewall rule, VM, disk). Recorded the moment it exists; `rm`, a failed create and an
 * interrupted create all remove exactly what the log names, newest first.
 */
export interface ResourceEntry {
  /** Driver-defined kind: "container", "instance", "security-group". */
  kind: string;
  /** Provider id (container id, i-0abc, sg-123, a VM UUID). */
  id: string;
  /** Human name for messages ("security group tmachine-prod"). */
  label?: string;
  /** Shared with other machines (a cluster's security group): removed only by the last user. */
  shared?: boolean;
  /** Anything else the driver needs to remove it (region, zone, path). JSON only. */
  details?: Record<string, string | number | boolean>;
}

export interface UndoLog {
  /** Records a resource and persists the record before returning. */
  record(entry: ResourceEntry): Promise<void>;
  /** Drops an entry (the driver removed or replaced the resource itself). */
  forget(kind: string, id: string): Promise<void>;
  /** Current entries, oldest first. */
  entries(): readonly ResourceEntry[];
}

/** A port a stack publishes, to open in a cloud firewall (`swarm deploy --open-ports`). */
export interface PortToOpen {
  port: number;
  protocol: 'tcp' | 'udp';
}

/** What a cloud driver needs to know of the cluster to firewall it (SPEC §4). */
export interface ClusterHints {
  name: string;
  /** VXLAN port when moved off 4789 (`--data-path-port`). */
  dataPathPort?: number;
  /** Encrypted overlays need ESP (IP protocol 50) between members. */
  encryptedOverlay?: boolean;
}

export interface DriverContext<Options, State> {
  machineName: string;
  /** The cluster this machine is made for, when `swarm bootstrap` makes it. */
  cluster?: ClusterHints;
  /** The machine's directory in the store (the driver may keep files there). */
  machineDir: string;
  /** Cache shared by all machines (host images, cloud lookups, boot images). */
  cacheDir: string;
  /** Typed, validated options (the driver's optionsSchema parsed them). */
  options: Options;
  /** Typed state from the record; mutate it, then saveState() persists it. */
  state: State;
  /**
   * The CPU architecture of the engine the host will get, as uname prints it ("x86_64",
   * "aarch64"), when tmachine installs a bundle: a driver that picks an image or machine
   * type checks it matches before anything is launched.
   */
  engineArch?: string;
  /** The public half of the machine's own SSH key (OpenSSH line), to install at create. */
  sshPublicKey: string;
  undo: UndoLog;
  /** Aborted on Ctrl-C/SIGTERM: long waits end with an `interrupted` DriverError. */
  signal: AbortSignal;
  /** A transient progress line ("waiting for instance i-123"). */
  report(message: string): void;
  /** A one-line note the user should read after the command ("type t3.small had no capacity; used t3.medium"). */
  note(message: string): void;
  /** Persists `state` now. */
  saveState(): Promise<void>;
}

/** What a driver instance does for one machine. */
export interface Driver {
  /** Checks options and the platform before anything is made; throws DriverError('invalid-input' | 'auth' | ...). */
  preCreateCheck(): Promise<void>;
  /**
   * Makes the host and waits until sshd answers. Every resource goes into the undo log the
   * moment it exists, so a failure anywhere leaves only what the log names.
   */
  create(): Promise<void>;
  /** Removes one resource named in the undo log; must succeed when it is already gone. */
  removeResource(entry: ResourceEntry): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  restart(): Promise<void>;
  kill(): Promise<void>;
  state(): Promise<HostState>;
  addresses(): Promise<HostAddresses>;
  sshTarget(): Promise<SshTarget>;

  /* Optional capabilities, used when present. */

  /**
   * The host's SSH public keys (OpenSSH lines) learned before the first SSH connection
   * (cloud console, guest attributes, the container's files). tmachine pins these instead of
   * trusting the first answer; undefined means "none published, pin on first contact".
   */
  publishedHostKeys?(): Promise<string[] | undefined>;
  /** A faster way than SFTP to put a file on the host (the engine's archive API). */
  putFile?(localPath: string, remotePath: string, options?: { mode?: number }): Promise<void>;
  /**
   * Opens `ports` in the machine's cloud firewall (EC2 security group, GCE firewall rules)
   * from `sourceCidr` only (`swarm deploy --open-ports`). A port opened before from another
   * range is then open from `sourceCidr` only, as in the host firewall. Idempotent: the same
   * ports and range again change nothing, and tmachine calls it for every member of a
   * cluster (members sharing one firewall find the ports open). Anything it creates goes into
   * the undo log (shared, like the cluster's other rules). Returns one line saying what is
   * open ("security group tmachine-prod (sg-1): 8080/tcp from 203.0.113.0/24"), or undefined
   * when the machine has no cloud firewall of tmachine's.
   */
  openPorts?(ports: PortToOpen[], sourceCidr: string): Promise<string | undefined>;
}

/** Result of a driver's detection: can it work on this computer right now? */
export interface Detection {
  usable: boolean;
  /** Why not, or what it found ("local engine at unix:///var/run/docker.sock"). */
  reason: string;
}

export interface DriverImplementation<Options, State> {
  open(context: DriverContext<Options, State>): Driver;
  /**
   * Creates N identical machines in one call (EC2 RunInstances MinCount=MaxCount=N, GCE
   * bulkInsert). Each context has its own state and undo log; after it returns, each
   * machine goes on as after Driver.create(). Used by `swarm bootstrap` and `create A B C`.
   */
  createMany?(contexts: DriverContext<Options, State>[]): Promise<void>;
}

export interface DriverDefinition<Options = unknown, State = unknown> {
  name: string;
  /** Docker Machine's names for the same driver ("amazonec2", "google"). */
  aliases?: string[];
  description: string;
  flags: DriverFlag[];
  /** Parses the resolved flag values into the driver's typed options. */
  optionsSchema: z.ZodType<Options>;
  /** Parses the stored state (`{}` for a new machine) into the driver's typed state. */
  stateSchema: z.ZodType<State>;
  /** Engine install mode when the user gives none (hosts without internet want "bundle"). */
  defaultEngineInstall?: 'bundle' | 'script' | 'package' | 'none';
  /** Most machines this driver can hold at once here (the docker driver: from free memory and disk). */
  capacity?(): Promise<{ max: number; reason: string }>;
  /** Whether the driver can work on this computer (the default-driver choice asks this). */
  detect?(): Promise<Detection>;
  load(): Promise<DriverImplementation<Options, State>>;
}

/** Identity function that fixes the option and state types for a definition. */
export function defineDriver<Options, State>(definition: DriverDefinition<Options, State>): DriverDefinition<Options, State> {
  return definition;
}

/** A definition whose types have been forgotten (what the registry hands around). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyDriverDefinition = DriverDefinition<any, any>;
