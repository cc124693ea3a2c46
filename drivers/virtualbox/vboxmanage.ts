/** Runs VBoxManage: the only way this driver talks to VirtualBox. */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { debug, DriverError } from '../kit/index.js';

export interface VBoxRunOptions {
  signal?: AbortSignal;
  /** Ends the call with a `timeout` DriverError (VBoxManage can hang on a stuck VM). */
  timeoutMs?: number;
}

export interface VBoxResult {
  stdout: string;
  stderr: string;
}

/** A failed VBoxManage call; `detail` is VirtualBox's own first error line. */
export class VBoxManageError extends DriverError {
  readonly args: string[];
  readonly stderr: string;
  readonly detail: string;

  constructor(args: string[], stderr: string, code: number | string | null) {
    const detail = firstErrorLine(stderr) ?? `exit ${String(code)}`;
    super(classify(detail), `VBoxManage ${args[0] ?? ''} failed: ${detail}`);
    this.args = args;
    this.stderr = stderr;
    this.detail = detail;
  }
}

function firstErrorLine(stderr: string): string | undefined {
  const line = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l.startsWith('VBoxManage: error:') && !l.includes('Details: code') && !l.includes('Context:'));
  return line?.replace(/^VBoxManage: error:\s*/, '') ?? (stderr.trim().split(/\r?\n/)[0] || undefined);
}

function classify(detail: string): DriverError['kind'] {
  if (/Could not find|not found|does not exist|VERR_FILE_NOT_FOUND/i.test(detail)) return 'not-found';
  if (/already exists/i.test(detail)) return 'already-exists';
  return 'failed';
}

/** Finds VBoxManage: the given path, else `VBoxManage`/`vboxmanage` on PATH. */
export function findVBoxManage(given: string | undefined): string {
  if (given) {
    const resolved = path.resolve(given);
    if (!isExecutable(resolved)) {
      throw new DriverError('invalid-input', `--virtualbox-vboxmanage ${given}: no executable there`, { hint: 'give the path of VBoxManage from VirtualBox 7' });
    }
    return resolved;
  }
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter).filter(Boolean)) {
    for (const name of ['VBoxManage', 'vboxmanage']) {
      const candidate = path.join(dir, name);
      if (isExecutable(candidate)) return candidate;
    }
  }
  throw new DriverError('unsupported', 'VBoxManage was not found on PATH', {
    hint: 'install VirtualBox 7 from virtualbox.org, or pass --virtualbox-vboxmanage with the path of VBoxManage',
  });
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export class VBoxManage {
  constructor(readonly executable: string) {}

  run(args: string[], options: VBoxRunOptions = {}): Promise<VBoxResult> {
    debug('virtualbox', `VBoxManage ${args.join(' ')}`);
    return new Promise((resolve, reject) => {
      let timedOut = false;
      const child = execFile(
        this.executable,
        args,
        { maxBuffer: 16 * 1024 * 1024, ...(options.signal ? { signal: options.signal } : {}), env: { ...process.env, LC_ALL: 'C' } },
        (error, stdout, stderr) => {
          if (timer) clearTimeout(timer);
          if (options.signal?.aborted) {
            reject(new DriverError('interrupted', `interrupted during VBoxManage ${args[0] ?? ''}`));
            return;
          }
          if (timedOut) {
            reject(new DriverError('timeout', `VBoxManage ${args[0] ?? ''} did not finish within ${Math.round((options.timeoutMs ?? 0) / 1000)}s`));
            return;
          }
          if (error) {
            const code = (error as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
            if (code === 'ENOENT' || code === 'EACCES') {
              reject(new DriverError('unsupported', `cannot run ${this.executable}: ${String(code)}`, { hint: 'install VirtualBox 7 or fix --virtualbox-vboxmanage' }));
              return;
            }
            reject(new VBoxManageError(args, String(stderr), code));
            return;
          }
          resolve({ stdout: String(stdout), stderr: String(stderr) });
        },
      );
      const timer = options.timeoutMs
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, options.timeoutMs)
        : undefined;
    });
  }

  /** `--machinereadable` output as key → value (quotes removed). */
  async machineInfo(vm: string, options: VBoxRunOptions = {}): Promise<Map<string, string> | undefined> {
    try {
      const { stdout } = await this.run(['showvminfo', vm, '--machinereadable'], options);
      return parseMachineReadable(stdout);
    } catch (error) {
      if (error instanceof VBoxManageError && error.kind === 'not-found') return undefined;
      throw error;
    }
  }
}

export function parseMachineReadable(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^("?)([^="]+)\1=(.*)$/.exec(line);
    if (!m) continue;
    let value = m[3]!;
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    out.set(m[2]!, value);
  }
  return out;
}

export interface HostOnlyInterface {
  name: string;
  ip: string;
  mask: string;
  status: string;
}

/** `list hostonlyifs`: blocks of "Key: value" lines separated by blank lines. */
export function parseHostOnlyInterfaces(text: string): HostOnlyInterface[] {
  const out: HostOnlyInterface[] = [];
  for (const block of text.split(/\r?\n\s*\r?\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split(/\r?\n/)) {
      const m = /^([A-Za-z0-9]+):\s*(.*)$/.exec(line.trim());
      if (m) fields.set(m[1]!, m[2]!.trim());
    }
    const name = fields.get('Name');
    if (name) out.push({ name, ip: fields.get('IPAddress') ?? '', mask: fields.get('NetworkMask') ?? '', status: fields.get('Status') ?? '' });
  }
  return out;
}

/** `list vms`: `"name" {uuid}` lines. */
export function parseVmList(text: string): Array<{ name: string; uuid: string }> {
  const out: Array<{ name: string; uuid: string }> = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^"(.*)" \{([0-9a-fA-F-]{36})\}$/.exec(line.trim());
    if (m) out.push({ name: m[1]!, uuid: m[2]! });
  }
  return out;
}

/** Whether VirtualBox 7 answers here (for `detect`): VBoxManage on PATH and its version. */
export async function detectVirtualBox(): Promise<{ usable: boolean; reason: string }> {
  let executable: string;
  try {
    executable = findVBoxManage(undefined);
  } catch (error) {
    return { usable: false, reason: error instanceof Error ? error.message : String(error) };
  }
  try {
    const { stdout } = await new VBoxManage(executable).run(['--version'], { timeoutMs: 10_000 });
    const version = stdout.trim().split(/\r?\n/).pop() ?? '';
    const major = Number(/^(\d+)\./.exec(version)?.[1] ?? NaN);
    return major >= 7 ? { usable: true, reason: `VirtualBox ${version} (${executable})` } : { usable: false, reason: `VirtualBox ${version} is older than 7.0` };
  } catch (error) {
    return { usable: false, reason: error instanceof Error ? error.message : String(error) };
  }
}
