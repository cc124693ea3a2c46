/**
 * CLI start-up benchmark: median wall time of `tmachine --version` and of
 * `tmachine ls --quiet` over a store of 50 machines, and proof that `ls` loads no cloud SDK.
 * Run: npm run bench
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { ensureStoreCertificates } from '../src/certs/certs.js';
import { writeResults } from './lib/common.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = path.join(root, 'bin', 'run.js');
const RUNS = Number(process.env['BENCH_RUNS'] ?? 15);
const CLOUD_SDK = /@aws-sdk|@smithy|@google-cloud|google-gax|googleapis|google-auth-library/;

interface Seeded {
  address: string;
  port?: number;
}

function seedStore(dir: string, count: number, at: (i: number) => Seeded = (i) => ({ address: `192.0.2.${i}` })): void {
  fs.mkdirSync(path.join(dir, 'machines'), { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'store.json'), JSON.stringify({ schemaVersion: 1 }));
  for (let i = 1; i <= count; i++) {
    const name = `bench-${String(i).padStart(2, '0')}`;
    const { address, port } = at(i);
    const mdir = path.join(dir, 'machines', name);
    fs.mkdirSync(mdir, { recursive: true, mode: 0o700 });
    const record = {
      schemaVersion: 1,
      name,
      createdAt: new Date().toISOString(),
      driver: { name: 'generic', options: { 'generic-ip-address': address, ...(port ? { 'generic-ssh-port': port } : {}) }, state: {}, resources: [] },
      ssh: { user: 'root', host: address, port: port ?? 22, keyPath: 'id_ed25519' },
      addresses: { public: address },
      engine: { install: 'bundle', opts: [], env: [], labels: [], insecureRegistries: [], registryMirrors: [], registryCAs: [], port: port ?? 2376 },
    };
    fs.writeFileSync(path.join(mdir, 'config.json'), JSON.stringify(record, null, 2), { mode: 0o600 });
  }
}

function timeRuns(args: string[], env: NodeJS.ProcessEnv, runs = RUNS): { median: number; min: number; max: number; stdout: string } {
  const times: number[] = [];
  let stdout = '';
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8' });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (r.status !== 0) throw new Error(`tmachine ${args.join(' ')} failed: ${r.stderr}`);
    stdout = r.stdout;
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, min: times[0]!, max: times[times.length - 1]! , stdout };
}

/**
 * `ls` over 50 machines of which 10 do not answer: they point at a local listener that
 * accepts connections and never says a word (a host whose engine hangs), the other 40 at a
 * closed local port (refused at once). Loopback only: the benchmark sends nothing anywhere.
 */
async function lsWithDeadMachines(): Promise<{ median: number; min: number; max: number; timeoutMs: number }> {
  const silent = net.createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentPort = (silent.address() as net.AddressInfo).port;
  const closed = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(port));
    });
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-bench-dead-'));
  try {
    seedStore(dir, 50, (i) => ({ address: '127.0.0.1', port: i <= 10 ? silentPort : closed }));
    // A store CA and client certificate, so the engine checks go as far as the TLS handshake.
    await ensureStoreCertificates(path.join(dir, 'certs'));
    const timeoutMs = 2_000;
    const r = timeRuns(['ls', '--timeout', String(timeoutMs / 1000)], { ...process.env, TMACHINE_STORAGE_PATH: dir }, Math.min(RUNS, 5));
    return { ...r, timeoutMs };
  } finally {
    silent.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
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
  const modules = [...new Set(fs.readFileSync(trace, 'utf8').split('\n').filter(Boolean))];
  const cloud = modules.filter((m) => CLOUD_SDK.test(m));

  const dead = await lsWithDeadMachines();
  const rows = [
    ['command', 'runs', 'median ms', 'min ms', 'max ms'],
    ['tmachine --version', String(RUNS), version.median.toFixed(0), version.min.toFixed(0), version.max.toFixed(0)],
    [`tmachine ls --quiet (${listed} machines)`, String(RUNS), ls.median.toFixed(0), ls.min.toFixed(0), ls.max.toFixed(0)],
    [`tmachine ls --timeout ${dead.timeoutMs / 1000} (50 machines, 10 never answer)`, String(Math.min(RUNS, 5)), dead.median.toFixed(0), dead.min.toFixed(0), dead.max.toFixed(0)],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  console.log(`\nnode ${process.version}; modules loaded by \`ls --quiet\`: ${modules.length}; cloud SDK modules among them: ${cloud.length}`);
  console.log(`ls with 10 silent machines: ${(dead.median - dead.timeoutMs).toFixed(0)} ms over the --timeout (target: at most 500 ms); targets: --version 60 ms, ls --quiet 100 ms`);
  writeResults('cli', { runs: RUNS, version, ls: { median: ls.median, min: ls.min, max: ls.max }, lsDead: dead, modules: modules.length, cloudModules: cloud.length });
  if (listed !== 50) throw new Error(`ls listed ${listed} machines, expected 50`);
  if (cloud.length > 0) {
    console.log(cloud.slice(0, 5).join('\n'));
    process.exitCode = 1;
  }
} finally {
  fs.rmSync(store, { recursive: true, force: true });
}
