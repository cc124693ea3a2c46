/**
 * The driver interface (SPEC §5), after libmachine's: a driver only makes, breaks and
 * reports on a host. Everything on the host (engine, certificates, firewall, swarm) is
 * tmachine's job over SSH, so a driver never runs remote commands itself.
 *
 * A driver package (built-in in drivers/<name>/, or a third-party npm package) exports
 * `definition: DriverDefinition`. The definition is cheap to load (names and flags only);
 * `load()` brings in the implementation and any cloud SDK, and runs only when a machine
 * of that driver is created or asked about.
 */

export type DriverFlagType = 'string' | 'number' | 'boolean' | 'string[]';
export type DriverFlagValue = string | number | boolean | string[];

export interface DriverFlag {
  /** Full flag name without dashes, prefixed with the driver name: "docker-image". */
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

export type DriverOptions = Record<string, DriverFlagValue | undefined>;

/** JSON-serialisable driver state, persisted in the machine record after each call. */
export type DriverState = Record<string, unknown>;

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
  /** Host key published by the platform before first contact (cloud console, guest attributes). */
  publishedHostKeys?: string[];
}

export interface DriverContext {
  machineName: string;
  /** The machine's directory in the store (the driver may keep files there). */
  machineDir: string;
  /** Cache shared by all machines (host images, cloud lookups). */
  cacheDir: string;
  /** Parsed and validated flag values. */
  options: DriverOptions;
  /** State from the record; the driver mutates it and tmachine persists it. */
  state: DriverState;
  /** The public half of the machine's own SSH key, to install on the host at create. */
  sshPublicKey: string;
  /** Progress lines for the user ("pulling image", "waiting for instance"). */
  report(message: string): void;
  /** Persist the current state now (called after each resource a create makes). */
  saveState(): Promise<void>;
}

export interface Driver {
  /** Checks flags and the platform before anything is made; throws TmachineError. */
  preCreateCheck(): Promise<void>;
  /**
   * Makes the host and waits until its SSH port answers. On failure it leaves in state
   * what it made, so remove() can undo it.
   */
  create(): Promise<void>;
  /** Removes everything create made; must succeed on partial state and on a host already gone. */
  remove(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  restart(): Promise<void>;
  kill(): Promise<void>;
  state(): Promise<HostState>;
  addresses(): Promise<HostAddresses>;
  sshTarget(): Promise<SshTarget>;
}

export interface DriverDefinition {
  name: string;
  /** Docker Machine's names for the same driver ("amazonec2", "google"). */
  aliases?: string[];
  description: string;
  flags: DriverFlag[];
  /** Engine install mode when the user gives none (hosts without internet want "bundle"). */
  defaultEngineInstall?: 'bundle' | 'script' | 'package' | 'none';
  load(): Promise<(context: DriverContext) => Driver>;
}
