/**
 * The e2e lab: a local Docker engine (started when none answers), the host image and a
 * Debian engine bundle, all made with tmachine's own code and cached under /var/tmp, so a
 * second run starts in seconds. Without root/dockerd/debootstrap the e2e suites fail with
 * the reason, unless TMACHINE_E2E=skip.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { describe } from 'vitest';
import { ensureLocalEngine } from '../../drivers/docker/local-engine.js';
import { ensureHostImage } from '../../drivers/docker/host-image.js';
import { buildBundleFromDebian } from '../../src/engine/debian-bundle.js';
import { repoRoot, runCli, tempStore, type CliOptions, type CliResult } from './cli.js';

export const CACHE_DIR = process.env['TMACHINE_CACHE_PATH'] ?? '/var/tmp/tmachine-cache';

export interface Lab {
  docker: Dockerode;
  endpoint: string;
  bundlePath: string;
  bundleSha256: string;
  bundleVersion: string;
}

function missingPrerequisite(): string | undefined {
  if (process.getuid?.() !== 0) return 'e2e tests need root (they start containers with systemd inside)';
  const onPath = (bin: string) => (process.env['PATH'] ?? '').split(':').some((d) => fs.existsSync(path.join(d, bin))) || fs.existsSync(`/usr/sbin/${bin}`);
  if (!onPath('dockerd') && !fs.existsSync('/var/run/docker.sock')) return 'e2e tests need a Docker engine (apt-get install docker.io)';
  if (!onPath('debootstrap')) return 'e2e tests need debootstrap to build the host image (apt-get install debootstrap)';
  return undefined;
}

let labPromise: Promise<Lab> | undefined;

export function prepareLab(): Promise<Lab> {
  labPromise ??= (async () => {
    const report = (m: string) => process.stderr.write(`[lab] ${m}\n`);
    const engine = await ensureLocalEngine({ report, start: true });
    await ensureHostImage(engine.docker, 'tmachine/host:bookworm', { report });
    const bundle = await buildBundleFromDebian({ cacheDir: CACHE_DIR, report });
    return { docker: engine.docker, endpoint: engine.endpoint, bundlePath: bundle.path, bundleSha256: bundle.sha256, bundleVersion: bundle.version ?? '' };
  })();
  return labPromise;
}

/**
 * describe() for e2e suites. A green run means they ran: when the lab cannot run here the
 * suite fails with the reason, and is skipped only when asked (TMACHINE_E2E=skip).
 */
export function describeE2E(name: string, body: () => void): void {
  const missing = missingPrerequisite();
  if (missing && process.env['TMACHINE_E2E'] !== 'skip') {
    throw new Error(`${missing}; set TMACHINE_E2E=skip to run the other tests without them`);
  }
  if (missing) {
    describe.skip(`${name} (skipped: ${missing})`, body);
    return;
  }
  describe(name, body);
}

/**
 * Every docker-driver host the suite makes is on a network with no route out (issue 20,
 * "offline, proven"): a step that leaned on the internet would fail here, not pass by luck.
 */
export const OFFLINE_HOSTS_ENV = { TMACHINE_DOCKER_NETWORK_INTERNAL: '1' } as const;

/** A temporary store plus a CLI runner bound to it and to the lab engine. */
export function labSession(prefix: string) {
  const store = tempStore(`tmachine-${prefix}-`);
  const id = Math.random().toString(36).slice(2, 6);
  const network = `tm-${prefix}-${id}`;
  const outputs: string[] = [];
  const cli = async (args: string[], options: Partial<CliOptions> = {}): Promise<CliResult> => {
    const result = await runCli(args, {
      store: store.path,
      timeoutMs: 600_000,
      ...options,
      env: { TMACHINE_CACHE_PATH: CACHE_DIR, TMACHINE_DOCKER_NETWORK: network, ...OFFLINE_HOSTS_ENV, ...options.env },
    });
    outputs.push(result.stdout, result.stderr);
    return result;
  };
  return {
    store: store.path,
    network,
    /** Unique machine names per run: several runs may share one engine. */
    name: (n: string) => `${prefix}${id}-${n}`,
    cli,
    /** Everything every command printed, for "no secret in any output" checks. */
    outputs,
    /** bash -c SCRIPT against this store, with `tmachine` a shell function: commands exactly as a user types them. */
    shell: (script: string, env: NodeJS.ProcessEnv = {}): string =>
      execFileSync('bash', ['-c', `set -euo pipefail; tmachine() { "${process.execPath}" "${path.join(repoRoot, 'bin', 'run.js')}" "$@"; }\n${script}`], {
        encoding: 'utf8',
        env: { ...process.env, TMACHINE_STORAGE_PATH: store.path, TMACHINE_CACHE_PATH: CACHE_DIR, TMACHINE_DOCKER_NETWORK: network, ...OFFLINE_HOSTS_ENV, ...env },
        timeout: 300_000,
      }),
    cleanup: async (docker: Dockerode) => {
      const names = fs.existsSync(path.join(store.path, 'machines')) ? fs.readdirSync(path.join(store.path, 'machines')) : [];
      if (names.length > 0) await runCli(['rm', '-f', '-y', ...names], { store: store.path, timeoutMs: 300_000, env: { TMACHINE_CACHE_PATH: CACHE_DIR } });
      await docker.getNetwork(network).remove().catch(() => undefined);
      store.cleanup();
    },
  };
}

/** Fails with the command's output, so a red test says what tmachine printed. */
export function ok(result: CliResult): CliResult {
  if (result.code !== 0) throw new Error(`exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`);
  return result;
}

/**
 * A 2 MB image from Debian's busybox-static (`docker import`, then `docker save`), cached:
 * there is no registry here, so tests load images onto the nodes from this tarball.
 */
export async function busyboxImageTarball(lab: Lab): Promise<{ tarball: string; image: string }> {
  const image = 'tmachine/busybox:test';
  const dir = path.join(CACHE_DIR, 'images');
  const tarball = path.join(dir, 'busybox.tar');
  if (fs.existsSync(tarball)) return { tarball, image };
  fs.mkdirSync(dir, { recursive: true });
  const work = fs.mkdtempSync(path.join(CACHE_DIR, 'busybox-'));
  try {
    execFileSync('apt-get', ['download', 'busybox-static'], { cwd: work, stdio: 'ignore' });
    const deb = fs.readdirSync(work).find((f) => f.endsWith('.deb'))!;
    execFileSync('dpkg', ['-x', deb, 'x'], { cwd: work });
    const root = path.join(work, 'root', 'bin');
    fs.mkdirSync(root, { recursive: true });
    fs.copyFileSync(path.join(work, 'x', 'bin', 'busybox'), path.join(root, 'busybox'));
    fs.chmodSync(path.join(root, 'busybox'), 0o755);
    for (const applet of ['sh', 'nc', 'echo', 'cat', 'sleep', 'hostname', 'nslookup', 'ip', 'true', 'ls']) fs.symlinkSync('busybox', path.join(root, applet));
    const tar = execFileSync('tar', ['-C', path.join(work, 'root'), '-c', '.'], { maxBuffer: 64 * 1024 * 1024 });
    const { Readable } = await import('node:stream');
    const imported = await lab.docker.importImage(Readable.from([tar]), { repo: 'tmachine/busybox', tag: 'test' });
    await new Promise((resolve, reject) => lab.docker.modem.followProgress(imported, (e: Error | null) => (e ? reject(e) : resolve(undefined))));
    const saved = await lab.docker.getImage(image).get();
    const partial = `${tarball}.part`;
    await new Promise<void>((resolve, reject) => {
      const out = fs.createWriteStream(partial);
      saved.pipe(out);
      out.on('finish', resolve);
      out.on('error', reject);
    });
    fs.renameSync(partial, tarball);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return { tarball, image };
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, deadlineMs = 60_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what} did not happen within ${deadlineMs / 1000}s${last ? `: ${String(last)}` : ''}`);
}
