/**
 * Finds (or, as root, starts) the Docker engine the `docker` driver puts its hosts on.
 * Order: $DOCKER_HOST, the system socket, then tmachine's own engine under
 * /var/tmp/tmachine-engine (the one this module starts on machines with no system
 * Docker service, e.g. CI containers without systemd).
 */
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { DriverError, debug } from '../kit/index.js';
import { engineOptions } from '../kit/engine.js';

export interface LocalEngine {
  docker: Dockerode;
  /** "unix:///path" or "tcp://host:port": what to record and later pass to engineFromEndpoint. */
  endpoint: string;
  startedByUs: boolean;
  /** Set for a TLS tcp endpoint: the directory holding ca.pem, cert.pem, key.pem. */
  tlsCertPath?: string;
}

export interface TlsSettings {
  /** Directory with ca.pem, cert.pem, key.pem (Docker's DOCKER_CERT_PATH layout). */
  certPath: string;
}

export const SYSTEM_SOCKET = '/var/run/docker.sock';
export const TMACHINE_ENGINE_DIR = '/var/tmp/tmachine-engine';

export interface EnsureLocalEngineOptions {
  report(message: string): void;
  /** Start tmachine's own dockerd when nothing answers (root only). */
  start: boolean;
  /** Where tmachine's own engine lives (tests point this elsewhere). */
  engineDir?: string;
  /** Unix sockets tried after $DOCKER_HOST; default: the system socket, then engineDir's. */
  socketPaths?: string[];
  pingTimeoutMs?: number;
  startTimeoutMs?: number;
}

const DEFAULT_PING_TIMEOUT_MS = 3_000;
const DEFAULT_START_TIMEOUT_MS = 30_000;

/**
 * A client for an endpoint recorded earlier. TLS comes from `tls`, or for tcp endpoints
 * from DOCKER_TLS_VERIFY / DOCKER_CERT_PATH as the docker CLI reads them.
 */
export function engineFromEndpoint(endpoint: string, tls?: TlsSettings): Dockerode {
  return new Dockerode(dockerOptionsFor(endpoint, tls ?? tlsFromEnvironment()));
}

export async function ensureLocalEngine(options: EnsureLocalEngineOptions): Promise<LocalEngine> {
  const engineDir = options.engineDir ?? TMACHINE_ENGINE_DIR;
  const pingTimeoutMs = options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
  const tried: string[] = [];

  const candidates: { endpoint: string; tls?: TlsSettings }[] = [];
  const fromEnv = process.env['DOCKER_HOST'];
  if (fromEnv) {
    const tls = fromEnv.startsWith('tcp://') ? tlsFromEnvironment() : undefined;
    candidates.push(tls ? { endpoint: fromEnv, tls } : { endpoint: fromEnv });
  }
  const sockets = options.socketPaths ?? [SYSTEM_SOCKET, path.join(engineDir, 'docker.sock')];
  for (const socket of sockets) candidates.push({ endpoint: `unix://${socket}` });

  const seen = new Set<string>();
  for (const candidate of candidates) {
    if (seen.has(candidate.endpoint)) continue;
    seen.add(candidate.endpoint);
    let docker: Dockerode;
    try {
      docker = new Dockerode(dockerOptionsFor(candidate.endpoint, candidate.tls));
    } catch (error) {
      tried.push(`${candidate.endpoint} (${errorText(error)})`);
      continue;
    }
    const answer = await ping(docker, pingTimeoutMs);
    if (answer === true) {
      debug('docker', `local engine answers at ${candidate.endpoint}`);
      const found: LocalEngine = { docker, endpoint: candidate.endpoint, startedByUs: false };
      if (candidate.tls) found.tlsCertPath = candidate.tls.certPath;
      return found;
    }
    tried.push(`${candidate.endpoint} (${answer})`);
  }

  if (options.start) {
    const refusal = cannotStartReason();
    if (refusal) tried.push(`not starting one: ${refusal}`);
    else return startEngine(engineDir, options);
  }

  throw new DriverError('unreachable', `no local Docker engine answers (tried ${tried.join(', ')})`, {
    hint: 'start one (`dockerd &` or `systemctl start docker`), set DOCKER_HOST, or install docker.io',
  });
}

/**
 * Removes the empty cgroup directories left in this machine's tree on cgroup v1: with
 * cgroupns=host, the engine inside a host container creates `/docker/<id>` for each of
 * its own containers, and nothing deletes them once the host is gone. Pass the ids of
 * the containers the host's engine ran (collect them before removing the host) and the
 * host's own id. Only meaningful for an engine on this machine; rmdir only ever removes
 * empty cgroups, so a live one is never touched.
 */
export async function removeCgroupLeftovers(containerIds: string[], cgroupRoot = '/sys/fs/cgroup'): Promise<void> {
  let controllers: string[];
  try {
    controllers = await fs.readdir(cgroupRoot);
  } catch {
    return;
  }
  for (const id of containerIds) {
    if (!/^[0-9a-f]{12,64}$/.test(id)) continue;
    for (const controller of controllers) {
      await rmdirTree(path.join(cgroupRoot, controller, 'docker', id));
    }
  }
}

async function rmdirTree(dir: string): Promise<void> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) if (entry.isDirectory()) await rmdirTree(path.join(dir, entry.name));
  // A cgroup directory "contains" control files but rmdir succeeds once it has no
  // children and no processes; a busy one stays, which is what we want.
  await fs.rmdir(dir).catch(() => undefined);
}

// --- connecting -------------------------------------------------------------------

function tlsFromEnvironment(): TlsSettings | undefined {
  const verify = process.env['DOCKER_TLS_VERIFY'];
  // The docker CLI treats any non-empty value as "on" (Docker Machine writes "1").
  if (!verify || verify === '0') return undefined;
  return { certPath: process.env['DOCKER_CERT_PATH'] || path.join(os.homedir(), '.docker') };
}

function dockerOptionsFor(endpoint: string, tls: TlsSettings | undefined): Dockerode.DockerOptions {
  if (!tls || !endpoint.startsWith('tcp://')) return engineOptions({ endpoint });
  const read = (file: string): Buffer => {
    const full = path.join(tls.certPath, file);
    try {
      return readFileSync(full);
    } catch {
      throw new DriverError('failed', `cannot read ${full} for the TLS connection to ${endpoint}`, {
        hint: 'set DOCKER_CERT_PATH to the directory holding ca.pem, cert.pem and key.pem',
      });
    }
  };
  return engineOptions({ endpoint, tls: { ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') } });
}

/** true, or the reason it did not answer (for the "tried ..." line). */
async function ping(docker: Dockerode, timeoutMs: number): Promise<true | string> {
  try {
    // The signal bounds a hung socket; a missing socket fails at once.
    await (docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, {
      abortSignal: AbortSignal.timeout(timeoutMs),
    });
    return true;
  } catch (error) {
    return errorText(error);
  }
}

function errorText(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return 'no socket';
  if (e?.code === 'ECONNREFUSED') return 'connection refused';
  if (e?.code === 'EACCES') return 'permission denied';
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return 'no answer';
  if (error instanceof DriverError) return error.message;
  return (e?.message ?? String(error)).split('\n')[0] ?? 'error';
}

// --- starting our own dockerd -------------------------------------------------------

function cannotStartReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  if (!findOnPath('dockerd')) return 'dockerd is not installed';
  return undefined;
}

function findOnPath(command: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (!dir) continue;
    const full = path.join(dir, command);
    try {
      accessSync(full, fsConstants.X_OK);
      return full;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

async function startEngine(engineDir: string, options: EnsureLocalEngineOptions): Promise<LocalEngine> {
  const socket = path.join(engineDir, 'docker.sock');
  const pidFile = path.join(engineDir, 'pid');
  const logFile = path.join(engineDir, 'dockerd.log');
  const endpoint = `unix://${socket}`;
  const docker = new Dockerode(dockerOptionsFor(endpoint, undefined));
  await fs.mkdir(engineDir, { recursive: true, mode: 0o711 });

  // Another tmachine (or a previous run) may have started it a moment ago: wait for that
  // one instead of starting a second dockerd that would fail on the pidfile.
  const existingPid = readPid(pidFile);
  let child: ReturnType<typeof spawn> | undefined;
  let exited = false;
  if (existingPid !== undefined && isAlive(existingPid) && isDockerd(existingPid)) {
    options.report(`waiting for the Docker engine already starting at ${endpoint} (pid ${existingPid})`);
  } else {
    options.report(`starting a Docker engine at ${endpoint} (log: ${logFile})`);
    const log = openSync(logFile, 'a');
    try {
      child = spawn(
        'dockerd',
        [
          '--data-root', path.join(engineDir, 'data'),
          '--exec-root', path.join(engineDir, 'exec'),
          '-H', endpoint,
          '--pidfile', pidFile,
        ],
        // Its own session, output to the log: it outlives this command by design.
        { detached: true, stdio: ['ignore', log, log] },
      );
    } finally {
      closeSync(log);
    }
    // A spawn failure emits 'error' (and maybe no 'exit'); both end the wait below.
    child.once('error', () => (exited = true));
    child.once('exit', () => (exited = true));
    child.unref();
  }

  const deadline = Date.now() + (options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  while (Date.now() < deadline) {
    if ((await ping(docker, 1_000)) === true) {
      return { docker, endpoint, startedByUs: child !== undefined };
    }
    if (exited) {
      // Lost a start race: the winner's pid is in the pidfile and it is still coming up.
      const winner = readPid(pidFile);
      if (winner === undefined || !isAlive(winner)) break;
    }
    await sleep(250);
  }
  const last = await lastLogLine(logFile);
  throw new DriverError('failed', 
    `the Docker engine started at ${endpoint} ${exited ? 'exited' : 'did not answer within ' + Math.round((options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS) / 1000) + ' s'}${last ? `: ${last}` : ''}`,
    { hint: `see ${logFile}` },
  );
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Guards against a stale pidfile whose pid now belongs to some other program. */
function isDockerd(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dockerd';
  } catch {
    return true; // no /proc to ask: trust the pidfile
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function lastLogLine(logFile: string): Promise<string | undefined> {
  try {
    const text = await fs.readFile(logFile, 'utf8');
    const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
    return lines.at(-1)?.slice(0, 300);
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
