/**
 * Shared pieces of the hardening suites: a lab session on a subnet of this suite's own range
 * (10.207.0.0/16), a CLI run that acts the moment its progress shows a step (a fault is
 * injected there, never after a sleep), what the store names, what the engine holds that no
 * record names, and a hash of the whole store tree.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { repoRoot, type CliResult } from '../support/cli.js';
import { CACHE_DIR, labSession, ok, OFFLINE_HOSTS_ENV } from '../support/lab.js';

export interface MachineJson {
  name: string;
  creating?: boolean;
  driver: { name: string; state: { containerId?: string; network?: string } };
  ssh: { host: string; port: number; user: string; keyPath: string; hostKey?: { key: string } };
  addresses: { public: string; private?: string };
  swarm?: { cluster?: string; role?: string };
}

/**
 * A lab session whose docker network gets a /24 of 10.207.0.0/16 (third octet from
 * `octets`, one picked at random so a run next to a leftover network still finds a free one).
 */
export function hardeningSession(prefix: string, octets: [number, number]) {
  const octet = octets[0] + Math.floor(Math.random() * (octets[1] - octets[0] + 1));
  const subnet = `10.207.${octet}.0/24`;
  const s = labSession(prefix);
  const env = { TMACHINE_DOCKER_SUBNET: subnet };
  const cli = (args: string[], options: Parameters<typeof s.cli>[1] = {}) => s.cli(args, { ...options, env: { ...env, ...options?.env } });
  return { ...s, cli, subnet, gateway: `10.207.${octet}.1`, env: { TMACHINE_STORAGE_PATH: s.store, TMACHINE_CACHE_PATH: CACHE_DIR, TMACHINE_DOCKER_NETWORK: s.network, ...OFFLINE_HOSTS_ENV, ...env } };
}
export type HardeningSession = ReturnType<typeof hardeningSession>;

export interface WatchedRun extends CliResult {
  /** Whether the trigger was seen (and the action ran). */
  triggered: boolean;
  /** The progress line that matched. */
  trigger?: string;
}

/**
 * Runs the CLI and calls `action` once, the moment stdout or stderr shows `trigger` (the
 * plain progress lines look like `❯ NAME: upload the engine bundle`). The run continues
 * while the action runs; the result comes when the CLI exits.
 */
export function runWatching(session: HardeningSession, args: string[], trigger: RegExp, action: (match: RegExpExecArray) => Promise<void> | void, timeoutMs = 420_000): Promise<WatchedRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'run.js'), ...args], { env: { ...process.env, ...session.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let triggered = false;
    let matched: string | undefined;
    let acting: Promise<void> = Promise.resolve();
    const look = () => {
      if (triggered) return;
      const m = trigger.exec(stdout) ?? trigger.exec(stderr);
      if (!m) return;
      triggered = true;
      matched = m[0];
      acting = Promise.resolve().then(() => action(m));
    };
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      look();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      look();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      session.outputs.push(stdout, stderr);
      acting.then(
        () => resolve({ code: code ?? -1, stdout, stderr, triggered, ...(matched ? { trigger: matched } : {}) }),
        (error: unknown) => reject(new Error(`the fault action failed: ${String(error)}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`)),
      );
    });
  });
}

export { errorLines, STACK_TRACE } from '../support/cli.js';

export async function machines(session: HardeningSession): Promise<MachineJson[]> {
  const names = ok(await session.cli(['ls', '--quiet'])).stdout.split('\n').filter(Boolean);
  return Promise.all(names.map(async (n) => JSON.parse(ok(await session.cli(['inspect', n])).stdout) as MachineJson));
}

/** Containers and volumes labelled for a machine starting with `prefix` that no record names. */
export async function orphans(docker: Dockerode, session: HardeningSession, prefix: string): Promise<string[]> {
  const known = new Set((await machines(session)).map((m) => m.name));
  const containers = await docker.listContainers({ all: true, filters: { label: ['tmachine.machine'] } });
  const volumes = (await docker.listVolumes({ filters: { label: ['tmachine.machine'] } })).Volumes ?? [];
  const ours = (machine: string | undefined) => machine !== undefined && machine.startsWith(prefix);
  return [
    ...containers.filter((c) => ours(c.Labels['tmachine.machine']) && !known.has(c.Labels['tmachine.machine']!)).map((c) => `container ${c.Names[0]}`),
    ...volumes.filter((v) => ours(v.Labels?.['tmachine.machine']) && !known.has(v.Labels!['tmachine.machine']!)).map((v) => `volume ${v.Name}`),
  ];
}

/** Containers and volumes labelled for any machine starting with `prefix`. */
export async function resourcesOf(docker: Dockerode, prefix: string): Promise<string[]> {
  const containers = await docker.listContainers({ all: true, filters: { label: ['tmachine.machine'] } });
  const volumes = (await docker.listVolumes({ filters: { label: ['tmachine.machine'] } })).Volumes ?? [];
  return [
    ...containers.filter((c) => c.Labels['tmachine.machine']?.startsWith(prefix)).map((c) => `container ${c.Names[0]}`),
    ...volumes.filter((v) => v.Labels?.['tmachine.machine']?.startsWith(prefix)).map((v) => `volume ${v.Name}`),
  ].sort();
}

/** Every file of a tree with its mode and content hash: equal before and after = unchanged. */
export function treeHash(root: string): string {
  const lines: string[] = [];
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      const rel = path.relative(root, full);
      const mode = (fs.lstatSync(full).mode & 0o7777).toString(8);
      if (entry.isDirectory()) {
        lines.push(`d ${mode} ${rel}`);
        walk(full);
      } else if (entry.isFile()) {
        lines.push(`f ${mode} ${rel} ${crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`);
      } else {
        lines.push(`o ${mode} ${rel}`);
      }
    }
  };
  walk(root);
  return lines.join('\n');
}

/** Runs a command inside a lab container through the engine (no SSH, no tmachine). */
export async function execIn(docker: Dockerode, containerId: string, script: string): Promise<{ code: number; output: string }> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: ['sh', '-c', script], AttachStdout: true, AttachStderr: true, Tty: true });
  const stream = await exec.start({ hijack: true, stdin: false, Tty: true });
  let output = '';
  await new Promise((resolve) => {
    stream.on('data', (d: Buffer) => (output += d.toString()));
    stream.on('end', resolve);
  });
  const info = await exec.inspect();
  return { code: info.ExitCode ?? -1, output };
}

/** Swarm node hostnames as the first answering manager lists them (one line per node). */
export async function nodeList(session: HardeningSession, manager: string): Promise<string[]> {
  const out = ok(await session.cli(['ssh', manager, '--', 'docker', 'node', 'ls', '--format', "'{{.Hostname}} {{.Status}}'"])).stdout;
  return out.trim().split('\n').filter(Boolean).sort();
}
