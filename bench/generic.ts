/**
 * Three existing hosts (sshd, no engine) to a swarm with the generic driver, against the floor
 * (bench/floor.sh in "existing" mode) on the same kind of hosts, fresh hosts each run.
 * Target: 3 s or less, within 1.3x of the floor. Writes bench/results/generic.json.
 * Run: npm run bench:generic   (BENCH_RUNS, BENCH_WARMUP)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fmt, machineLine, prepareBenchLab, runFloor, runs, session, spread, table, warmups, writeResults } from './lib/common.js';
import { genericClusterFile, startBareHosts } from './lib/hosts.js';

const SUBNET = process.env['BENCH_SUBNET'] ?? '10.198.0.0/24';
const lab = await prepareBenchLab();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-generic-'));

interface Sample {
  total: number;
  engine: number;
  swarm: number;
  uploadedMB: number;
}

async function tmachineOnce(): Promise<Sample> {
  const hosts = await startBareHosts(lab, 3, SUBNET);
  const s = session(lab, 'generic');
  try {
    const r = s.tmachine(['swarm', 'bootstrap', '-f', genericClusterFile(work, `g${s.id}`, hosts), '--json']);
    if (r.code !== 0) throw new Error(`bootstrap failed:\n${r.stdout}\n${r.stderr}`);
    const t = (JSON.parse(r.stdout) as { timings: { machines: Record<string, { engineMs: number }>; machinesWallMs: number; swarmMs: number; uploadedBytes: number } }).timings;
    return { total: r.seconds, engine: t.machinesWallMs / 1000, swarm: t.swarmMs / 1000, uploadedMB: t.uploadedBytes / 1_048_576 };
  } finally {
    await s.cleanup();
    await hosts.cleanup();
  }
}

async function floorOnce(): Promise<number> {
  const hosts = await startBareHosts(lab, 3, SUBNET);
  try {
    return runFloor(lab, 3, { FLOOR_HOSTS: hosts.ips.join(' '), FLOOR_KEY: hosts.keyFile }, 'existing').total;
  } finally {
    await hosts.cleanup();
  }
}

for (let i = 0; i < warmups; i++) {
  await tmachineOnce();
  await floorOnce();
}
const tm: Sample[] = [];
const floor: number[] = [];
for (let i = 0; i < runs; i++) {
  tm.push(await tmachineOnce());
  floor.push(await floorOnce());
}
fs.rmSync(work, { recursive: true, force: true });

console.log(`three existing hosts (generic driver, no engine) to a 3-node swarm; ${runs} runs after ${warmups} warm-up; ${machineLine()}`);
console.log(
  table(
    ['', 'total s', 'engines s', 'swarm s', 'uploaded MB'],
    [
      ['tmachine swarm bootstrap -f', fmt(spread(tm.map((x) => x.total))), fmt(spread(tm.map((x) => x.engine))), fmt(spread(tm.map((x) => x.swarm))), fmt(spread(tm.map((x) => x.uploadedMB)))],
      ['floor (scp, untar, dockerd, init, join)', fmt(spread(floor)), '', '', ''],
    ],
  ),
);
const ratio = spread(tm.map((x) => x.total)).median / spread(floor).median;
console.log(`\ntmachine / floor: ${ratio.toFixed(2)} (target at most 1.3); tmachine median ${spread(tm.map((x) => x.total)).median.toFixed(1)} s (target at most 3)`);
console.log(`written: ${writeResults('generic', { runs, warmups, tmachine: tm, floor, ratio })}`);
