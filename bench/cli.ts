/**
 * CLI start-up benchmark: median wall time of `tmachine --version` and of
 * `tmachine ls --quiet` over a store of 50 machines, and proof that `ls` loads no cloud SDK.
 * Run: npm run bench
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = path.join(root, 'bin', 'run.js');
const RUNS = Number(process.env['BENCH_RUNS'] ?? 15);
const CLOUD_SDK = /@aws-sdk|@smithy|@google-cloud|google-gax|googleapis|google-auth-library/;

function seedStore(dir: string, count: number): void {
  fs.mkdirSync(path.join(dir, 'machines'), { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'store.json'), JSON.stringify({ schemaVersion: 1 }));
  for (let i = 1; i <= count; i++) {
    const name = `bench-${String(i).padStart(2, '0')}`;
    const mdir = path.join(dir, 'machines', name);
    fs.mkdirSync(mdir, { recursive: true, mode: 0o700 });
    const record = {
      schemaVersion: 1,
      name,
      createdAt: new Date().toISOString(),
      driver: { name: 'generic', options: { 'generic-ip-address': `192.0.2.${i}` }, state: {} },
      ssh: { user: 'root', host: `192.0.2.${i}`, port: 22, keyPath: 'id_ed25519' },
      addresses: { public: `192.0.2.${i}` },
      engine: { install: 'bundle', opts: [], env: [], labels: [], insecureRegistries: [], registryMirrors: [], registryCAs: [], port: 2376 },
    };
    fs.writeFileSync(path.join(mdir, 'config.json'), JSON.stringify(record, null, 2), { mode: 0o600 });
  }
}

function timeRuns(args: string[], env: NodeJS.ProcessEnv): { median: number; min: number; max: number; stdout: string } {
  const times: number[] = [];
  let stdout = '';
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8' });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (r.status !== 0) throw new Error(`tmachine ${args.join(' ')} failed: ${r.stderr}`);
    stdout = r.stdout;
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, min: times[0]!, max: times[times.length - 1]! , stdout };
}

const store = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-bench-'));
try {
  seedStore(store, 50);
  const env = { ...process.env, TMACHINE_STORAGE_PATH: store };
  const version = timeRuns(['--version'], env);
  const ls = timeRuns(['ls', '--quiet'], env);
  const listed = ls.stdout.trim().split('\n').length;

  const trace = path.join(store, 'modules.txt');
  spawnSync(process.execPath, ['--import', path.join(root, 'bench', 'module-trace.mjs'), bin, 'ls', '--quiet'], {
    env: { ...env, TMACHINE_MODULE_TRACE: trace },
  });
  const modules = fs.readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  const cloud = modules.filter((m) => CLOUD_SDK.test(m));

  const rows = [
    ['command', 'runs', 'median ms', 'min ms', 'max ms'],
    ['tmachine --version', String(RUNS), version.median.toFixed(0), version.min.toFixed(0), version.max.toFixed(0)],
    [`tmachine ls --quiet (${listed} machines)`, String(RUNS), ls.median.toFixed(0), ls.min.toFixed(0), ls.max.toFixed(0)],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  console.log(`\nnode ${process.version}; modules loaded by \`ls --quiet\`: ${modules.length}; cloud SDK modules among them: ${cloud.length}`);
  if (listed !== 50) throw new Error(`ls listed ${listed} machines, expected 50`);
  if (cloud.length > 0) {
    console.log(cloud.slice(0, 5).join('\n'));
    process.exitCode = 1;
  }
} finally {
  fs.rmSync(store, { recursive: true, force: true });
}
