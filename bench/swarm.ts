/**
 * Local 3-node swarm benchmark: `tmachine swarm bootstrap --managers 1 --workers 2` from a
 * cached host image and engine bundle (both prepared first, not timed), phase by phase.
 * Target on the 2-core reference machine: 30 s or less for the whole command.
 * Run: npm run bench:swarm   (BENCH_RUNS=N for more runs; needs root and the local lab)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureHostImage } from '../drivers/docker/host-image.js';
import { ensureLocalEngine } from '../drivers/docker/local-engine.js';
import { buildBundleFromDebian } from '../src/engine/bundle.js';

const TARGET_S = 30;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = path.join(root, 'bin', 'run.js');
const runs = Number(process.env['BENCH_RUNS'] ?? 1);
const cacheDir = process.env['TMACHINE_CACHE_PATH'] ?? '/var/tmp/tmachine-cache';

interface Timings {
  machines: Record<string, { hostMs: number; sshMs: number; engineMs: number }>;
  machinesWallMs: number;
  swarmMs: number;
  totalMs: number;
}

const quiet = () => undefined;
const engine = await ensureLocalEngine({ report: quiet, start: true });
await ensureHostImage(engine.docker, 'tmachine/host:bookworm', { report: quiet });
await buildBundleFromDebian({ cacheDir, report: quiet });

const rows: string[][] = [];
const totals: number[] = [];
for (let run = 1; run <= runs; run++) {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-bench-swarm-'));
  const id = Math.random().toString(36).slice(2, 6);
  const env = { ...process.env, TMACHINE_STORAGE_PATH: store, TMACHINE_CACHE_PATH: cacheDir, TMACHINE_DOCKER_NETWORK: `tm-bench-${id}` };
  try {
    const start = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [bin, 'swarm', 'bootstrap', '--managers', '1', '--workers', '2', '--prefix', `bench${id}`, '--json'], { env, encoding: 'utf8' });
    const wallS = Number(process.hrtime.bigint() - start) / 1e9;
    if (r.status !== 0) throw new Error(`bootstrap failed:\n${r.stdout}\n${r.stderr}`);
    const result = JSON.parse(r.stdout) as { timings: Timings; nodes: unknown[] };
    const t = result.timings;
    const machines = Object.values(t.machines);
    const max = (f: (m: (typeof machines)[number]) => number) => Math.max(...machines.map(f)) / 1000;
    totals.push(wallS);
    rows.push([
      String(run),
      String(result.nodes.length),
      max((m) => m.hostMs + m.sshMs).toFixed(1),
      max((m) => m.engineMs).toFixed(1),
      (t.machinesWallMs / 1000).toFixed(1),
      (t.swarmMs / 1000).toFixed(1),
      wallS.toFixed(1),
    ]);
  } finally {
    spawnSync(process.execPath, [bin, 'swarm', 'down', '--rm', '-y'], { env, encoding: 'utf8' });
    await engine.docker.getNetwork(`tm-bench-${id}`).remove().catch(() => undefined);
    fs.rmSync(store, { recursive: true, force: true });
  }
}

const header = ['run', 'nodes', 'hosts s', 'engine s', 'hosts+engine wall s', 'swarm s', 'command s'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
console.log(header.map((h, i) => h.padStart(widths[i]!)).join('  '));
for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
const sorted = [...totals].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)]!;
console.log(`\nlocal 3-node swarm (1 manager, 2 workers), cached image and bundle, ${os.cpus().length} cores, node ${process.version}`);
console.log(`median ${median.toFixed(1)} s; target ${TARGET_S} s: ${median <= TARGET_S ? 'met' : 'NOT met'}`);
console.log('hosts = container start + sshd (max over nodes); engine = bundle upload, install, TLS, firewall (max); swarm = init + joins + labels');
