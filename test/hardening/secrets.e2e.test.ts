/**
 * Secrets on real paths: a docker-driver host, then the same host adopted as a generic
 * machine whose engine install (script mode, from a URL with a password) fails with the
 * password and a join token in its error output, with and without --debug. The error line,
 * the progress and the debug log show them redacted. Then: no private key of the store (the
 * machine's SSH key, the CA key, the client and server keys) appears in anything any command
 * printed, and every file holding a key or credential is 0600, every directory 0700.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { describeE2E, ok, prepareLab, type Lab } from '../support/lab.js';
import { errorLines, hardeningSession, machines, STACK_TRACE, type MachineJson } from './support.js';

describeE2E('secrets never reach output, --debug included', () => {
  vi.setConfig({ testTimeout: 300_000 });
  let lab: Lab;
  const s = hardeningSession('hsec', [10, 29]);
  const adopt = hardeningSession('hseg', [10, 29]);
  const host = s.name('h');
  const password = `Pw-${crypto.randomBytes(8).toString('hex')}`;
  const token = `SWMTKN-1-${crypto.randomBytes(24).toString('hex').slice(0, 50)}-${crypto.randomBytes(13).toString('hex').slice(0, 25)}`;
  let record: MachineJson;

  beforeAll(async () => {
    lab = await prepareLab();
    ok(await s.cli(['create', '--driver', 'docker', host]));
    record = (await machines(s)).find((m) => m.name === host)!;
    // A `curl` that fails the way a misconfigured artifact server makes it fail: echoing
    // the credentials and a token it was handed. Installed first on PATH, as root.
    const fake = ['#!/bin/sh', `echo "curl: (22) 401 Unauthorized: user deploy password ${password} (last join used ${token})" >&2`, 'exit 22', ''].join('\n');
    ok(await s.cli(['ssh', host, '--', `echo ${Buffer.from(fake).toString('base64')} | base64 -d | sudo tee /usr/local/bin/curl >/dev/null && sudo chmod 755 /usr/local/bin/curl`]));
  });
  afterAll(async () => {
    if (!lab) return;
    await adopt.cleanup(lab.docker);
    await s.cleanup(lab.docker);
  });

  const adoptArgs = (name: string) => [
    'create', '--driver', 'generic',
    '--generic-ip-address', record.ssh.host,
    '--generic-ssh-user', record.ssh.user,
    '--generic-ssh-key', path.join(s.store, 'machines', host, record.ssh.keyPath),
    '--engine-install', 'script',
    // An engine version the host does not have, so the install step runs.
    '--engine-version', '99.0.1',
    '--engine-install-url', `http://deploy:${password}@${s.gateway}:9/install.sh`,
    name,
  ];

  for (const withDebug of [false, true]) {
    it(`a failing remote install with a password and a token in its error output: redacted in the error line${withDebug ? ', the progress and the --debug log' : ' and the progress'}`, async () => {
      const name = adopt.name(withDebug ? 'dbg' : 'plain');
      const r = await adopt.cli([...adoptArgs(name), ...(withDebug ? ['--debug'] : [])]);
      expect(r.code).not.toBe(0);
      const everything = r.stdout + r.stderr;
      expect(everything).not.toContain(password);
      expect(everything).not.toContain(token);
      expect(everything).not.toContain(encodeURIComponent(password));
      const lines = errorLines(r);
      // Without --debug exactly one line; with it, the stack follows (its own first line too).
      if (!withDebug) expect(lines).toHaveLength(1);
      // The line names the host and the step, with the remote's own words, secrets hidden.
      const url = `http://deploy:***@${s.gateway}:9/install.sh`;
      expect(lines[0]).toBe(
        `Error: step "install the engine with the convenience script" failed on ${name}: downloading ${url} failed: ` +
          `curl: (22) 401 Unauthorized: user deploy password *** (last join used SWMTKN-***) (run \`tmachine provision ${name} --debug\` to see the remote commands)`,
      );
      if (withDebug) {
        // The debug log shows the remote command that was run, URL password hidden.
        expect(r.stderr).toMatch(/curl -fsSL --retry 3 -o \S+ '?http:\/\/deploy:\*\*\*@/);
        expect(r.stderr).toMatch(STACK_TRACE);
      } else {
        expect(r.stderr).not.toMatch(STACK_TRACE);
      }
      // The adopted machine was not kept half-made.
      expect((await machines(adopt)).map((m) => m.name)).not.toContain(name);
    });
  }

  it('no private key of the store appears in anything printed: create, inspect, config, env, ls, --debug runs', async () => {
    for (const args of [['inspect', host], ['config', host], ['env', host], ['ls', '--json'], ['provision', host, '--debug'], ['ssh', host, '--debug', '--', 'true'], ['ls', '--debug']]) ok(await s.cli(args));
    const keyFiles = [
      path.join(s.store, 'machines', host, record.ssh.keyPath),
      path.join(s.store, 'machines', host, 'key.pem'),
      path.join(s.store, 'machines', host, 'server-key.pem'),
      path.join(s.store, 'certs', 'ca-key.pem'),
      path.join(s.store, 'certs', 'key.pem'),
    ];
    const printed = [...s.outputs, ...adopt.outputs].join('\n');
    expect(printed.length).toBeGreaterThan(1000);
    for (const file of keyFiles) {
      const pem = fs.readFileSync(file, 'utf8');
      expect(pem).toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
      const body = pem.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));
      expect(body.length).toBeGreaterThan(0);
      for (const line of body) expect(printed, `a line of ${path.basename(file)} was printed`).not.toContain(line);
    }
  });

  it('every store file holding a key or credential is 0600, every directory 0700', () => {
    const wrong: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        const mode = fs.statSync(full).mode & 0o777;
        const rel = path.relative(s.store, full);
        // The engine bundle cache holds public downloads; everything else is the user's.
        if (rel.startsWith('cache')) continue;
        if (entry.isDirectory()) {
          if (mode !== 0o700) wrong.push(`${rel}/ is ${mode.toString(8)}`);
          walk(full);
        } else if (/key|\.pem$|id_|config\.json$|\.json$/.test(entry.name) && mode !== 0o600) {
          wrong.push(`${rel} is ${mode.toString(8)}`);
        }
      }
    };
    walk(s.store);
    expect(fs.statSync(s.store).mode & 0o777).toBe(0o700);
    expect(wrong).toEqual([]);
    // The files that must exist for this check to mean anything.
    for (const f of ['certs/ca-key.pem', 'certs/key.pem', `machines/${host}/${record.ssh.keyPath}`, `machines/${host}/server-key.pem`, `machines/${host}/config.json`]) {
      expect(fs.statSync(path.join(s.store, f)).mode & 0o777, f).toBe(0o600);
    }
  });
});
