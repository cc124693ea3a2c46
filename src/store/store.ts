/**
 * The machine store (SPEC §6). Every write is atomic (temp file + rename), every
 * read-modify-write of a machine happens under that machine's lock, so parallel
 * tmachine processes never leave a torn or lost record.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import writeFileAtomic from 'write-file-atomic';
import type { z } from 'zod';
import { backoff } from '../../drivers/kit/wait.js';
import { TmachineError } from '../errors.js';
import { cachePath, defaultStorePath } from './paths.js';
import type { MachineRecord } from './machine-record.js';
import { MACHINE_NAME, STORE_SCHEMA_VERSION } from './names.js';

/** The record schema (and zod) load with the first record read or written, not before. */
const recordSchema = async () => (await import('./machine-record.js')).machineRecordSchema;

const DIR_MODE = 0o700;
const SECRET_MODE = 0o600;

export function validateMachineName(name: string): void {
  if (name.length > 63) {
    throw new TmachineError(`invalid machine name "${name}": longer than 63 characters`, { hint: 'use a shorter name' });
  }
  if (!MACHINE_NAME.test(name)) {
    throw new TmachineError(`invalid machine name "${name}"`, {
      hint: 'use letters, digits, "-" and "." only, starting with a letter or digit',
    });
  }
}

interface StoreMeta {
  schemaVersion: number;
}

export class Store {
  private constructor(readonly root: string) {}

  /** Opens (creating if needed) the store and refuses one written by a newer tmachine. */
  static async open(root: string = defaultStorePath()): Promise<Store> {
    const store = new Store(path.resolve(root));
    const existing = await fs.stat(store.root).catch(() => undefined);
    if (existing && !existing.isDirectory()) {
      throw new TmachineError(`the store path ${store.root} is a file, not a directory`, { hint: 'point --storage-path or TMACHINE_STORAGE_PATH at a directory' });
    }
    await store.ensureDir(store.root);
    await store.ensureDir(store.machinesDir);
    await store.ensureDir(store.certsDir);
    await store.ensureDir(store.locksDir);
    const metaFile = path.join(store.root, 'store.json');
    const meta = await readJson<StoreMeta>(metaFile);
    if (meta === undefined) {
      await writeFileAtomic(metaFile, JSON.stringify({ schemaVersion: STORE_SCHEMA_VERSION }, null, 2) + '\n', { mode: SECRET_MODE });
    } else if (typeof meta.schemaVersion !== 'number' || meta.schemaVersion > STORE_SCHEMA_VERSION) {
      throw newerStoreError(metaFile, meta.schemaVersion);
    }
    return store;
  }

  get machinesDir(): string {
    return path.join(this.root, 'machines');
  }
  get certsDir(): string {
    return path.join(this.root, 'certs');
  }
  get cacheDir(): string {
    return cachePath(this.root);
  }
  private get locksDir(): string {
    return path.join(this.root, 'locks');
  }

  machineDir(name: string): string {
    return path.join(this.machinesDir, name);
  }

  /** Resolves a path stored in a record (relative to the machine dir, or absolute). */
  machineFile(name: string, file: string): string {
    return path.isAbsolute(file) ? file : path.join(this.machineDir(name), file);
  }

  async ensureDir(dir: string): Promise<void> {
    await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
  }

  async exists(name: string): Promise<boolean> {
    return (await readJson(path.join(this.machineDir(name), 'config.json'))) !== undefined;
  }

  async list(): Promise<string[]> {
    const entries = await fs.readdir(this.machinesDir, { withFileTypes: true });
    const names: string[] = [];
    for (const entry of entries) {
      if (entry.isDirectory() && MACHINE_NAME.test(entry.name) && (await this.exists(entry.name))) names.push(entry.name);
    }
    return names.sort();
  }

  async load(name: string): Promise<MachineRecord> {
    validateMachineName(name);
    const file = path.join(this.machineDir(name), 'config.json');
    const raw = await readJson<Record<string, unknown>>(file);
    if (raw === undefined) {
      throw new TmachineError(`machine "${name}" does not exist`, { hint: 'run `tmachine ls` to see the machines' });
    }
    const version = raw['schemaVersion'];
    if (typeof version === 'number' && version > STORE_SCHEMA_VERSION) throw newerStoreError(file, version);
    const parsed = (await recordSchema()).safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new TmachineError(`machine record ${file} is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`, {
        hint: 'restore it or remove the machine with `tmachine rm -f`',
      });
    }
    return parsed.data;
  }

  async loadAll(): Promise<MachineRecord[]> {
    return Promise.all((await this.list()).map((n) => this.load(n)));
  }

  /** Atomic write of the record; callers that read-modify-write use update(). */
  async save(record: MachineRecord): Promise<void> {
    validateMachineName(record.name);
    const checked = (await recordSchema()).parse(record);
    await this.ensureDir(this.machineDir(record.name));
    await writeFileAtomic(path.join(this.machineDir(record.name), 'config.json'), JSON.stringify(checked, null, 2) + '\n', {
      mode: SECRET_MODE,
    });
  }

  /**
   * Reserves a new machine name: creates its directory, failing when it exists. The
   * record written here has `creating: true` until create finishes.
   */
  async reserve(record: MachineRecord): Promise<void> {
    validateMachineName(record.name);
    try {
      await fs.mkdir(this.machineDir(record.name), { mode: DIR_MODE });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new TmachineError(`machine "${record.name}" already exists`, { hint: 'choose another name or `tmachine rm` it first' });
      }
      throw error;
    }
    await this.save(record);
  }

  /** Runs fn while holding the machine's lock (works across processes). */
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    validateMachineName(name);
    return this.withNamedLock(name, fn);
  }

  /**
   * The one lock primitive: a lock file under locks/ held while fn runs (across processes;
   * a holder that died is taken over after 15 s). With `holder`, the lock also records who
   * holds it, and a second caller waits up to `waitMs`, saying once whom it waits for, then
   * fails naming the holder.
   */
  async withNamedLock<T>(name: string, fn: () => Promise<T>, wait?: { holder: string; waitMs: number; onWait: (holder: string) => void }): Promise<T> {
    const lockTarget = path.join(this.locksDir, name);
    const holderFile = `${lockTarget}.holder`;
    const options = { realpath: false, lockfilePath: `${lockTarget}.lock`, stale: 15_000, update: 5_000 };
    let release: () => Promise<void>;
    if (!wait) {
      release = await lockfile.lock(lockTarget, { ...options, retries: { retries: 600, minTimeout: 10, maxTimeout: 100, factor: 1.2 } });
    } else {
      const giveUpAt = Date.now() + wait.waitMs;
      let told = false;
      for (;;) {
        try {
          release = await lockfile.lock(lockTarget, { ...options, retries: 0 });
          break;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
          const holder = (await fs.readFile(holderFile, 'utf8').catch(() => '')).trim() || 'another tmachine command';
          if (!told) {
            wait.onWait(holder);
            told = true;
          }
          if (Date.now() >= giveUpAt) {
            throw new TmachineError(`${name.replace(/^cluster-/, 'cluster ')} is locked by ${holder}`, { hint: 'wait for it to finish, then run this command again' });
          }
          await backoff(250);
        }
      }
      await writeFileAtomic(holderFile, `${wait.holder} (pid ${process.pid})\n`, { mode: SECRET_MODE });
    }
    try {
      return await fn();
    } finally {
      if (wait) await fs.rm(holderFile, { force: true });
      await release();
    }
  }

  get clustersDir(): string {
    return path.join(this.root, 'clusters');
  }

  /** A cluster record (clusters/NAME.json): validated by `schema`, migrated by `migrate`, undefined when missing. */
  async loadDocument<T>(file: string, schema: z.ZodType<T>, migrate: (raw: Record<string, unknown>) => Record<string, unknown> = (r) => r): Promise<T | undefined> {
    const raw = await readJson<Record<string, unknown>>(file);
    if (raw === undefined) return undefined;
    const version = raw['schemaVersion'];
    if (typeof version === 'number' && version > STORE_SCHEMA_VERSION) throw newerStoreError(file, version);
    const parsed = schema.safeParse(migrate(raw));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new TmachineError(`${file} is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`, { hint: 'restore it from a backup' });
    }
    return parsed.data;
  }

  /** Atomic write of a validated document with the store's schema version. */
  async saveDocument<T>(file: string, schema: z.ZodType<T>, value: T): Promise<void> {
    await this.ensureDir(path.dirname(file));
    const checked = schema.parse(value) as Record<string, unknown>;
    await writeFileAtomic(file, JSON.stringify({ schemaVersion: STORE_SCHEMA_VERSION, ...checked }, null, 2) + '\n', { mode: SECRET_MODE });
  }

  /** Read-modify-write under the machine lock. */
  async update(name: string, change: (record: MachineRecord) => MachineRecord | void | Promise<MachineRecord | void>): Promise<MachineRecord> {
    return this.withLock(name, async () => {
      const current = await this.load(name);
      const next = (await change(current)) ?? current;
      await this.save(next);
      return next;
    });
  }

  async remove(name: string): Promise<void> {
    validateMachineName(name);
    await fs.rm(this.machineDir(name), { recursive: true, force: true });
  }

  /** Keys and certificates: atomic, mode 0600. */
  async writeSecretFile(file: string, content: string | Buffer): Promise<void> {
    await this.ensureDir(path.dirname(file));
    await writeFileAtomic(file, content, { mode: SECRET_MODE });
  }
}

function newerStoreError(file: string, version: unknown): TmachineError {
  return new TmachineError(
    `${file} was written by a newer tmachine (store schema ${String(version)}, this tmachine reads up to ${STORE_SCHEMA_VERSION})`,
    { hint: 'upgrade tmachine, or point TMACHINE_STORAGE_PATH at another store' },
  );
}

async function readJson<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new TmachineError(`${file} is not valid JSON`, { hint: 'restore it from a backup or remove the machine with `tmachine rm -f`' });
  }
}
