/**
 * Concurrency and the engine's doors, on docker-driver hosts: two `create` of one name at
 * once, `ls` and `inspect` while a `create` runs, ten parallel `ssh NAME -- true`, two
 * different clusters bootstrapped at once on the same engine; and a client without a
 * certificate cannot reach 2376, 2375 is closed.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { describeE2E, ok, prepareLab, type Lab } from '../support/lab.js';
import { errorLines, hardeningSession, machines, nodeList, orphans, runWatching, STACK_TRACE, type MachineJson } from './support.js';

describeE2E('concurrency and the engine port', () => {
  vi.setConfig({ testTimeout: 420_000 });
  let lab: Lab;
  const s = hardeningSession('hcon', [50, 69]);
  const one = s.name('same');

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    if (lab) await s.cleanup(lab.docker);
  });

  it('two creates of the same name at once: exactly one succeeds, the other says the name is taken', async () => {
    const [a, b] = await Promise.all([s.cli(['create', '--driver', 'docker', one]), s.cli(['create', '--driver', 'docker', one])]);
    const codes = [a.code, b.code].sort();
    expect(codes[0]).toBe(0);
    expect(codes[1]).not.toBe(0);
    const loser = a.code === 0 ? b : a;
    expect(errorLines(loser)).toEqual([`Error: machine "${one}" already exists (choose another name or \`tmachine rm\` it first)`]);
    expect(loser.stderr).not.toMatch(STACK_TRACE);
    expect((await machines(s)).filter((m) => m.name === one)).toHaveLength(1);
    const containers = await lab.docker.listContainers({ all: true, filters: { label: [`tmachine.machine=${one}`] } });
    expect(containers).toHaveLength(1);
  });

  it('ten parallel `ssh NAME -- true` all succeed', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => s.cli(['ssh', one, '--', 'true'])));
    expect(results.map((r) => r.code)).toEqual(Array(10).fill(0));
  });

  it('a client without a certificate cannot reach 2376; 2375 is closed; with the store client certificate the engine answers', async () => {
    const record = (await machines(s)).find((m) => m.name === one)!;
    const host = record.addresses.public;
    // No client certificate: the engine's TLS (tlsverify) refuses the handshake or the request.
    const refused = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host, port: 2376, rejectUnauthorized: false }, () => {
        socket.write(`GET /info HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      });
      let reply = '';
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      socket.on('error', (e: Error) => resolve(`error: ${e.message}`));
      socket.on('close', () => resolve(reply.length > 0 ? `reply: ${reply.split('\r\n')[0]}` : 'closed without a reply'));
    });
    expect(refused).not.toMatch(/^reply: HTTP\/1\.1 200/);
    expect(refused).toMatch(/certificate|alert|handshake|closed without a reply|ECONNRESET/i);
    // Plain HTTP on 2375: nothing listens.
    const plain = await new Promise<string>((resolve) => {
      const socket = net.connect({ host, port: 2375 });
      socket.on('connect', () => {
        socket.destroy();
        resolve('open');
      });
      socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    expect(plain).toBe('ECONNREFUSED');
    // The same request with the store's client certificate is answered (the port is really the engine).
    const dir = path.join(s.store, 'machines', one);
    const answered = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host, port: 2376, ca: fs.readFileSync(path.join(dir, 'ca.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')), key: fs.readFileSync(path.join(dir, 'key.pem')) }, () => {
        socket.write(`GET /_ping HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      });
      let reply = '';
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      socket.on('error', reject);
      socket.on('close', () => resolve(reply.split('\r\n')[0] ?? ''));
    });
    expect(answered).toBe('HTTP/1.1 200 OK');
  });

  it('ls and inspect while a create runs: consistent, the machine being created shows as such', async () => {
    const name = s.name('busy');
    const seen: { ls?: string; inspect?: MachineJson; code?: number } = {};
    const r = await runWatching(s, ['create', '--driver', 'docker', name], new RegExp(`❯ ${name}: upload the engine bundle`), async () => {
      const [listed, inspected] = await Promise.all([s.cli(['ls', '--format', '{{.Name}} {{.State}}']), s.cli(['inspect', name])]);
      seen.ls = ok(listed).stdout;
      seen.inspect = JSON.parse(ok(inspected).stdout) as MachineJson;
    });
    ok(r);
    expect(r.triggered).toBe(true);
    expect(seen.ls).toContain(`${name} Creating`);
    expect(seen.ls).toContain(`${one} Running`);
    expect(seen.inspect?.creating).toBe(true);
    const after = (await machines(s)).find((m) => m.name === name)!;
    expect(after.creating).toBeUndefined();
    expect(ok(await s.cli(['ls', '--format', '{{.Name}} {{.State}}'])).stdout).toContain(`${name} Running`);
    ok(await s.cli(['rm', '-y', name, one]));
  });

  it('two different clusters bootstrapped at once on the same engine both complete', async () => {
    const [p1, p2] = [s.name('k1'), s.name('k2')];
    const [a, b] = await Promise.all(
      [p1, p2].map((p) => s.cli(['swarm', 'bootstrap', '--managers', '1', '--workers', '1', '--prefix', p])),
    );
    ok(a!);
    ok(b!);
    for (const p of [p1, p2]) {
      expect(await nodeList(s, `${p}-manager-1`)).toEqual([`${p}-manager-1 Ready`, `${p}-worker-1 Ready`]);
      expect(await orphans(lab.docker, s, p)).toEqual([]);
    }
    ok(await s.cli(['rm', '-y', `${p1}-manager-1`, `${p1}-worker-1`, `${p2}-manager-1`, `${p2}-worker-1`]));
  });
});
