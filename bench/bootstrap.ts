/**
 * Local swarm bootstrap on the docker driver: N = 1, 3 and 6 nodes (1 manager), fresh hosts
 * each run, cached host image and bundle; the same with --concurrency 1; and the floor
 * (bench/floor.sh) in the same run. Prints median (min-max) of the total and of each phase,
 * the ratios the speed targets are stated in, and writes bench/results/bootstrap.json.
 * Run: npm run bench:bootstrap   (BENCH_RUNS, BENCH_WARMUP, BENCH_SIZES=1,3,6)
 */
import { fmt, machineLine, prepareBenchLab, runFloor, runs, session, spread, table, warmups, writeResults, type FloorRun, type Spread } from './lib/common.js';

interface Timings {
  machines: Record<string, { hostMs: number; sshMs: number; engineMs: number }>;
  swarmMs: number;
}

const sizes = (process.env['BENCH_SIZES'] ?? '1,3,6').split(',').map(Number);
const lab = await prepareBenchLab();

interface Sample {
  total: number;
  hosts: number;
  engine: number;
  swarm: number;
}

async function bootstrapOnce(n: number, concurrency?: number): Promise<Sample> {
  const s = session(lab, `b${n}`);
  try {
    const args = ['swarm', 'bootstrap', '--managers', '1', '--workers', String(n - 1), '--prefix', `bench${s.id}`, '--json', ...(concurrency ? ['--concurrency', String(concurrency)] : [])];
    const r = s.tmachine(args);
    if (r.code !== 0) throw new Error(`bootstrap failed:\n${r.stdout}\n${r.stderr}`);
    const t = (JSON.parse(r.stdout) as { timings: Timings }).timings;
    const machines = Object.values(t.machines);
    const max = (f: (m: (typeof machines)[number]) => number) => Math.max(...machines.map(f)) / 1000;
    return { total: r.seconds, hosts: max((m) => m.hostMs + m.sshMs), engine: max((m) => m.engineMs), swarm: t.swarmMs / 1000 };
  } finally {
    await s.cleanup();
  }
}

async function series<T>(run: () => Promise<T> | T): Promise<T[]> {
  for (let i = 0; i < warmups; i++) await run();
  const out: T[] = [];
  for (let i = 0; i < runs; i++) out.push(await run());
  return out;
}

const pick = (samples: Sample[], key: keyof Sample): Spread => spread(samples.map((x) => x[key]));
const results: Record<string, { tmachine: Sample[]; serial?: Sample[]; floor: FloorRun[] }> = {};
for (const n of sizes) {
  results[n] = {
    tmachine: await series(() => bootstrapOnce(n)),
    floor: await series(() => runFloor(lab, n)),
    ...(n > 1 ? { serial: await series(() => bootstrapOnce(n, 1)) } : {}),
  };
}

console.log(`swarm bootstrap on the docker driver, cached image and bundle; ${runs} runs after ${warmups} warm-up; ${machineLine()}`);
console.log('seconds, median (min-max); hosts = container + systemd + sshd, engine = bundle + install + TLS + firewall + start (slowest node), swarm = init + joins + labels\n');
const rows: string[][] = [];
for (const n of sizes) {
  const r = results[n]!;
  rows.push([`tmachine N=${n}`, fmt(pick(r.tmachine, 'total')), fmt(pick(r.tmachine, 'hosts')), fmt(pick(r.tmachine, 'engine')), fmt(pick(r.tmachine, 'swarm'))]);
  if (r.serial) rows.push([`tmachine N=${n} --concurrency 1`, fmt(pick(r.serial, 'total')), fmt(pick(r.serial, 'hosts')), fmt(pick(r.serial, 'engine')), fmt(pick(r.serial, 'swarm'))]);
  rows.push([`floor N=${n}`, fmt(spread(r.floor.map((f) => f.total))), fmt(spread(r.floor.map((f) => f.hosts))), fmt(spread(r.floor.map((f) => f.engine))), fmt(spread(r.floor.map((f) => f.swarm)))]);
}
console.log(table(['', 'total', 'hosts', 'engine', 'swarm'], rows));

const median = (xs: number[]) => spread(xs).median;
const ratios: string[][] = [];
for (const n of sizes) {
  const r = results[n]!;
  ratios.push([`N=${n}: tmachine / floor`, (median(r.tmachine.map((x) => x.total)) / median(r.floor.map((f) => f.total))).toFixed(2), 'at most 1.3']);
  if (r.serial) ratios.push([`N=${n}: --concurrency 1 / parallel`, (median(r.serial.map((x) => x.total)) / median(r.tmachine.map((x) => x.total))).toFixed(2), n >= 6 ? 'at least 4' : '']);
}
if (results[1] && results[6]) ratios.push(['N=6 / N=1', (median(results[6].tmachine.map((x) => x.total)) / median(results[1].tmachine.map((x) => x.total))).toFixed(2), 'at most 1.5']);
if (results[3]) ratios.push(['N=3 total (s)', median(results[3].tmachine.map((x) => x.total)).toFixed(1), 'at most 10']);
console.log('\n' + table(['ratio', 'value', 'target'], ratios));
console.log(`\nwritten: ${writeResults('bootstrap', { runs, warmups, sizes, results })}`);
