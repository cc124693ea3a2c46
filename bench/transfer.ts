/**
 * Moving the engine bundle: tmachine's SFTP upload against OpenSSH `scp` of the same file to
 * the same host in the same run (one host, then five at once), and the bytes this computer
 * sends for a 5-node cluster with and without the one-upload relay. Targets: upload
 * throughput at least 0.9x scp's; one bundle's worth of bytes per cluster.
 * Run: npm run bench:transfer   (BENCH_RUNS)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SshConnection } from '../src/ssh/connection.js';
import { fmt, machineLine, prepareBenchLab, runs, session, spread, table, timed, writeResults } from './lib/common.js';
import { genericClusterFile, startBareHosts } from './lib/hosts.js';

const lab = await prepareBenchLab();
const size = fs.statSync(lab.bundle).size;
const mb = size / 1_048_576;
const hosts = await startBareHosts(lab, 5, process.env['BENCH_SUBNET'] ?? '10.197.0.0/24');
const key = fs.readFileSync(hosts.keyFile);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-transfer-'));

const scp = (ips: string[]) => scpParallel(ips);

/** OpenSSH scp to every host at once (one shell, one scp per host). */
const scpParallel = (ips: string[]) => {
  const script = ips.map((ip) => `scp -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i ${hosts.keyFile} ${lab.bundle} tmachine@${ip}:/home/tmachine/scp.tgz &`).join('\n') + '\nwait';
  return timed('bash', ['-c', script], process.env).seconds;
};

async function tmUpload(ips: string[]): Promise<number> {
  const connections = await Promise.all(ips.map((ip) => SshConnection.connect({ label: ip, host: ip, port: 22, user: 'tmachine', privateKey: key })));
  try {
    const start = process.hrtime.bigint();
    await Promise.all(connections.map((c) => c.upload(lab.bundle, '/home/tmachine/tm.tgz', { mode: 0o600 })));
    return Number(process.hrtime.bigint() - start) / 1e9;
  } finally {
    for (const c of connections) c.close();
  }
}

const one = { tmachine: [] as number[], scp: [] as number[] };
const five = { tmachine: [] as number[], scp: [] as number[] };
await tmUpload([hosts.ips[0]!]); // warm-up
scp([hosts.ips[0]!]);
for (let i = 0; i < runs; i++) {
  one.tmachine.push(await tmUpload([hosts.ips[0]!]));
  one.scp.push(scp([hosts.ips[0]!]));
  five.tmachine.push(await tmUpload(hosts.ips));
  five.scp.push(scpParallel(hosts.ips));
}

// Bytes this computer sends for a 5-node cluster: with the relay, and with TMACHINE_BUNDLE_RELAY=off.
const bytes: Record<string, number> = {};
for (const mode of ['relay', 'off'] as const) {
  const fresh = await startBareHosts(lab, 5, process.env['BENCH_SUBNET2'] ?? '10.196.0.0/24');
  const s = session(lab, `tx${mode}`);
  try {
    const r = timed(process.execPath, [path.join(process.cwd(), 'bin', 'run.js'), 'swarm', 'bootstrap', '-f', genericClusterFile(work, `t${s.id}`, fresh), '--json'], { ...s.env, ...(mode === 'off' ? { TMACHINE_BUNDLE_RELAY: 'off' } : {}) });
    if (r.code !== 0) throw new Error(`bootstrap failed:\n${r.stdout}\n${r.stderr}`);
    bytes[mode] = (JSON.parse(r.stdout) as { timings: { uploadedBytes: number } }).timings.uploadedBytes;
  } finally {
    await s.cleanup();
    await fresh.cleanup();
  }
}
await hosts.cleanup();
fs.rmSync(work, { recursive: true, force: true });

const mbps = (xs: number[], n: number) => spread(xs.map((s) => (mb * n) / s));
console.log(`engine bundle ${mb.toFixed(1)} MB; ${runs} runs; ${machineLine()}`);
console.log(
  table(
    ['MB/s, median (min-max)', 'tmachine (SFTP)', 'OpenSSH scp', 'ratio'],
    [
      ['one host', fmt(mbps(one.tmachine, 1)), fmt(mbps(one.scp, 1)), (mbps(one.tmachine, 1).median / mbps(one.scp, 1).median).toFixed(2)],
      ['five hosts at once (total)', fmt(mbps(five.tmachine, 5)), fmt(mbps(five.scp, 5)), (mbps(five.tmachine, 5).median / mbps(five.scp, 5).median).toFixed(2)],
    ],
  ),
);
console.log('ratio = tmachine throughput / scp throughput (target at least 0.9)\n');
console.log(
  table(
    ['5-node cluster, bytes sent by this computer', 'MB', 'bundles'],
    [
      ['one-upload relay (default)', (bytes['relay']! / 1_048_576).toFixed(1), (bytes['relay']! / size).toFixed(2)],
      ['TMACHINE_BUNDLE_RELAY=off', (bytes['off']! / 1_048_576).toFixed(1), (bytes['off']! / size).toFixed(2)],
    ],
  ),
);
console.log(`written: ${writeResults('transfer', { runs, bundleBytes: size, one, five, bytes })}`);
