/**
 * The e2e lab: a local Docker engine (started when none answers), the host image and a
 * Debian engine bundle, all made with tmachine's own code and cached under /var/tmp, so a
 * second run starts in seconds. Without root/dockerd/debootstrap the e2e suites are skipped
 * with the reason, unless TMACHINE_E2E=required (CI), where that is a failure.
 */
import fs from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { describe } from 'vitest';
import { ensureLocalEngine } from '../../drivers/docker/local-engine.js';
import { ensureHostImage } from '../../drivers/docker/host-image.js';
import { buildBundleFromDebian } from '../../src/engine/bundle.js';
import { runCli, tempStore, type CliOptions, type CliResult } from './cli.js';

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

/** describe() for e2e suites: skipped with the reason when the lab cannot run here. */
export function describeE2E(name: string, body: () => void): void {
  const missing = missingPrerequisite();
  if (missing && process.env['TMACHINE_E2E'] === 'required') {
    throw new Error(`TMACHINE_E2E=required but ${missing}`);
  }
  if (missing) {
    describe.skip(`${name} (skipped: ${missing})`, body);
    return;
  }
  describe(name, body);
}

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
      env: { TMACHINE_CACHE_PATH: CACHE_DIR, TMACHINE_DOCKER_NETWORK: network, ...options.env },
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
