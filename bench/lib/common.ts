/** What the benchmarks share: the lab, running tmachine and the floor, statistics and tables. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureHostImage } from '../../drivers/docker/host-image.js';
import { ensureLocalEngine, type LocalEngine } from '../../drivers/docker/local-engine.js';
import { buildBundleFromDebian } from '../../src/engine/debian-bundle.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const bin = path.join(root, 'bin', 'run.js');
export const cacheDir = process.env['TMACHINE_CACHE_PATH'] ?? '/var/tmp/tmachine-cache';
export const resultsDir = path.join(root, 'bench', 'results');

export interface Lab {
  engine: LocalEngine;
  bundle: string;
}

/** The lab engine, host image and bundle, prepared before any clock starts. */
export async function prepareBenchLab(): Promise<Lab> {
  const quiet = () => undefined;
  const engine = await ensureLocalEngine({ report: quiet, start: true });
  await ensureHostImage(engine.docker, 'tmachine/host:bookworm', { report: quiet });
  const bundle = await buildBundleFromDebian({ cacheDir, report: quiet });
  return { engine, bundle: bundle.path };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

export function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Run {
  const start = process.hrtime.bigint();
  const r = spawnSync(command, args, { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

/** A fresh store and network per run, removed afterwards. */
export function session(lab: Lab, tag: string) {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), `tmachine-bench-${tag}-`));
  const id = Math.random().toString(36).slice(2, 6);
  const network = `tm-bench-${tag}-${id}`;
  const env = { ...process.env, TMACHINE_STORAGE_PATH: store, TMACHINE_CACHE_PATH: cacheDir, TMACHINE_DOCKER_NETWORK: network };
  return {
    id,
    env,
    store,
    tmachine: (args: string[]) => timed(process.execPath, [bin, ...args], env),
    async cleanup() {
      const names = fs.existsSync(path.join(store, 'machines')) ? fs.readdirSync(path.join(store, 'machines')) : [];
      if (names.length > 0) timed(process.execPath, [bin, 'rm', '-f', '-y', ...names], env);
      await lab.engine.docker.getNetwork(network).remove().catch(() => undefined);
      fs.rmSync(store, { recursive: true, force: true });
    },
  };
}

export interface FloorRun {
  hosts: number;
  engine: number;
  swarm: number;
  total: number;
}

export function runFloor(lab: Lab, n: number, extraEnv: Record<string, string> = {}, mode: 'new' | 'existing' = 'new'): FloorRun {
  const r = timed('bash', [path.join(root, 'bench', 'floor.sh'), String(n), lab.bundle, mode], { ...process.env, DOCKER_HOST: lab.engine.endpoint, ...extraEnv });
  const m = /floor \d+ hosts=([\d.]+) engine=([\d.]+) swarm=([\d.]+) total=([\d.]+)/.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`floor.sh failed:\n${r.stdout}\n${r.stderr}`);
  return { hosts: Number(m[1]), engine: Number(m[2]), swarm: Number(m[3]), total: Number(m[4]) };
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)] ?? NaN, min: sorted[0] ?? NaN, max: sorted.at(-1) ?? NaN };
}

export const fmt = (s: Spread, digits = 1) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

export function machineLine(): string {
  return `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`;
}

export function writeResults(name: string, data: unknown): string {
  fs.mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), machine: machineLine(), ...(data as object) }, null, 2) + '\n');
  return file;
}

export const runs = Number(process.env['BENCH_RUNS'] ?? 5);
export const warmups = Number(process.env['BENCH_WARMUP'] ?? 1);
