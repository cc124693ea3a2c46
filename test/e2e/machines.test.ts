/**
 * Issue 3 acceptance, as a user runs it: real hosts (docker driver), a real engine from the
 * Debian bundle over SSH, TLS only, firewall open; the generic driver over SSH only.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hostContainerSpec } from '../../drivers/docker/container-spec.js';
import { describeE2E, labSession, ok, prepareLab, type Lab } from '../support/lab.js';
import { generateKeyPair } from '../../src/ssh/keys.js';
import { waitForTcp } from '../../src/net.js';

describeE2E('machines on real hosts (docker and generic drivers)', () => {
  let lab: Lab;
  const s = labSession('m');
  const n1 = s.name('n1');
  const bare: string[] = [];

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    for (const name of bare) await lab.docker.getContainer(name).remove({ force: true, v: true }).catch(() => undefined);
    for (const name of bare) await lab.docker.getVolume(`${name}-vol`).remove().catch(() => undefined);
    if (lab) await s.cleanup(lab.docker);
  });

  const sh = (args: string[], env: NodeJS.ProcessEnv = {}) => execFileSync('bash', ['-c', ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });

  it('create with no --driver gives a host whose engine (from the bundle) answers only over TLS on 2376', async () => {
    ok(await s.cli(['create', n1, '--engine-bundle', lab.bundlePath]));
    const env = ok(await s.cli(['env', n1])).stdout;
    expect(env).toContain('DOCKER_TLS_VERIFY="1"');
    // eval "$(tmachine env n1)" && docker info, as the README says.
    const info = sh([`${env}\ndocker info --format '{{.ServerVersion}}'`]);
    expect(info.trim()).toContain(lab.bundleVersion);
    const listening = ok(await s.cli(['ssh', n1, '--', 'sudo', 'ss', '-ltn'])).stdout;
    expect(listening).toMatch(/:2376\s/);
    expect(listening).not.toMatch(/:2375\s/);
    const rules = ok(await s.cli(['ssh', n1, '--', 'sudo', 'iptables', '-S', 'TMACHINE-INPUT'])).stdout;
    for (const rule of ['-p tcp -m tcp --dport 2377', '-p tcp -m tcp --dport 7946', '-p udp -m udp --dport 7946', '-p udp -m udp --dport 4789', '-p tcp -m tcp --dport 2376']) {
      expect(rules).toContain(rule);
    }
    // Without a client certificate the engine refuses to talk.
    const ip = ok(await s.cli(['ip', n1])).stdout.trim();
    const plain = new Docker({ host: ip, port: 2376, protocol: 'https', ca: fs.readFileSync(path.join(s.store, 'certs', 'ca.pem')), timeout: 5_000 });
    // The TLS handshake is refused for want of a client certificate (not a timeout, not a refused port).
    await expect(plain.version()).rejects.toThrow(/certificate|alert|handshake|socket hang up|ECONNRESET/i);
  });

  it('provision twice: the second run changes nothing and says so', async () => {
    const second = ok(await s.cli(['provision', n1]));
    expect(second.stderr).toMatch(new RegExp(`${n1}: nothing to change`));
  });

  it('regenerate-certs keeps docker info working', async () => {
    const before = fs.readFileSync(path.join(s.store, 'machines', n1, 'server.pem'), 'utf8');
    ok(await s.cli(['regenerate-certs', n1]));
    expect(fs.readFileSync(path.join(s.store, 'machines', n1, 'server.pem'), 'utf8')).not.toBe(before);
    const env = ok(await s.cli(['env', n1])).stdout;
    expect(sh([`${env}\ndocker info --format '{{.ServerVersion}}'`]).trim()).toContain(lab.bundleVersion);
  });

  it('ls shows the machine running with its engine version', async () => {
    const ls = ok(await s.cli(['ls', '--format', '{{.Name}} {{.State}} {{.DockerVersion}}'])).stdout;
    expect(ls).toContain(`${n1} Running v${lab.bundleVersion}`);
  });

  it('three hosts created by one command get the identical engine, the bundle uploaded once each and checked on the host', async () => {
    const names = ['a', 'b', 'c'].map(s.name);
    ok(await s.cli(['create', '--driver', 'docker', ...names]));
    const versions = new Set<string>();
    const shas = new Set<string>();
    for (const name of names) {
      versions.add(ok(await s.cli(['version', name])).stdout.trim());
      const sha = (JSON.parse(ok(await s.cli(['inspect', name])).stdout) as { engine: { bundleSha256: string } }).engine.bundleSha256;
      shas.add(sha);
      // One upload per host, kept under its checksum, and the file on the host hashes to it.
      const bundles = ok(await s.cli(['ssh', name, '--', 'sudo ls /var/lib/tmachine/bundles'])).stdout.trim().split('\n');
      expect(bundles).toEqual([`${sha}.tgz`]);
      const sum = ok(await s.cli(['ssh', name, '--', `sudo sha256sum /var/lib/tmachine/bundles/${sha}.tgz`])).stdout;
      expect(sum.split(' ')[0]).toBe(sha);
    }
    expect(shas.size).toBe(1);
    expect(versions.size).toBe(1);
    ok(await s.cli(['rm', '-y', ...names]));
  });

  function newKey(): { keyFile: string; publicKey: string } {
    const keys = generateKeyPair('e2e');
    const keyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tm-key-')), 'id');
    fs.writeFileSync(keyFile, keys.privateKey, { mode: 0o600 });
    return { keyFile, publicKey: keys.publicKey };
  }

  /** A host with sshd and no engine, made directly on the lab engine (not through tmachine). */
  async function bareHost(tag: string, prepare = ''): Promise<{ ip: string; keyFile: string }> {
    const network = (await lab.docker.getNetwork(s.network).inspect()) as { IPAM: { Config: Array<{ Subnet: string }> } };
    const subnet = network.IPAM.Config[0]!.Subnet.split('.');
    const ip = `${subnet[0]}.${subnet[1]}.${subnet[2]}.${200 + bare.length}`;
    const name = s.name(`bare-${tag}`);
    await lab.docker.createVolume({ Name: `${name}-vol` });
    const c = await lab.docker.createContainer(hostContainerSpec({ name, image: 'tmachine/host:bookworm', network: s.network, ip, volume: `${name}-vol`, labels: { 'tmachine.test': 'e2e' }, privileged: false }));
    bare.push(name);
    await c.start();
    const { keyFile, publicKey } = newKey();
    const script = `install -d -m700 -o tmachine -g tmachine /home/tmachine/.ssh && echo "${publicKey}" > /home/tmachine/.ssh/authorized_keys && chown tmachine /home/tmachine/.ssh/authorized_keys && chmod 600 /home/tmachine/.ssh/authorized_keys; ${prepare}`;
    const exec = await c.exec({ Cmd: ['sh', '-c', script], AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    await new Promise((r) => { stream.on('end', r); stream.resume(); });
    expect((await waitForTcp(ip, 22, 60_000)).ok).toBe(true);
    return { ip, keyFile };
  }

  it('the generic driver installs and configures the engine on a host over SSH only', async () => {
    const host = await bareHost('g1');
    const g1 = s.name('g1');
    ok(await s.cli(['create', '--driver', 'generic', '--generic-ip-address', host.ip, '--generic-ssh-user', 'tmachine', '--generic-ssh-key', host.keyFile, g1]));
    expect(ok(await s.cli(['version', g1])).stdout).toContain(lab.bundleVersion);
    const env = ok(await s.cli(['env', g1])).stdout;
    expect(sh([`${env}\ndocker info --format '{{.Name}}'`]).trim()).toBe(s.name('bare-g1'));
    ok(await s.cli(['rm', '-y', g1]));
  });

  function expectOneLine(result: { code: number; stderr: string }, pattern: RegExp) {
    expect(result.code).not.toBe(0);
    const errorLines = result.stderr.split('\n').filter((l) => l.startsWith('Error:'));
    expect(errorLines).toHaveLength(1);
    expect(errorLines[0]).toMatch(pattern);
    expect(result.stderr).not.toMatch(/\n\s+at .*:\d+:\d+/);
  }

  async function storeHolds(name: string): Promise<boolean> {
    return fs.existsSync(path.join(s.store, 'machines', name));
  }

  it('a bundle with a wrong checksum: one line, nothing in the store, no container left', async () => {
    const bad = s.name('badsum');
    const r = await s.cli(['create', bad, '--engine-bundle', lab.bundlePath, '--engine-bundle-sha256', '0'.repeat(64)]);
    expectOneLine(r, /checksum mismatch/);
    expect(await storeHolds(bad)).toBe(false);
    expect(await lab.docker.listContainers({ all: true, filters: { name: [bad] } })).toEqual([]);
  });

  it('an unreachable host: one line, nothing in the store', async () => {
    const u = s.name('unreach');
    const r = await s.cli(['create', '--driver', 'generic', '--generic-ip-address', '127.0.0.1', '--generic-ssh-port', '1', '--generic-ssh-key', newKey().keyFile, u]);
    expectOneLine(r, /could not reach 127\.0\.0\.1:1/);
    expect(await storeHolds(u)).toBe(false);
  });

  it('a host whose OS is not supported: one line, nothing in the store', async () => {
    const host = await bareHost('plan9', `printf 'ID=plan9\\nPRETTY_NAME="Plan 9 from Bell Labs"\\n' > /etc/os-release`);
    const p = s.name('plan9');
    const r = await s.cli(['create', '--driver', 'generic', '--generic-ip-address', host.ip, '--generic-ssh-user', 'tmachine', '--generic-ssh-key', host.keyFile, p]);
    expectOneLine(r, /unsupported OS.*Plan 9/i);
    expect(await storeHolds(p)).toBe(false);
  });

  it('a user without sudo: one line, nothing in the store', async () => {
    const host = await bareHost('nosudo', 'rm -f /etc/sudoers.d/tmachine; gpasswd -d tmachine sudo');
    const p = s.name('nosudo');
    const r = await s.cli(['create', '--driver', 'generic', '--generic-ip-address', host.ip, '--generic-ssh-user', 'tmachine', '--generic-ssh-key', host.keyFile, p]);
    expectOneLine(r, /no passwordless sudo/);
    expect(await storeHolds(p)).toBe(false);
  });

  it('rm -y leaves no container, volume or store entry', async () => {
    ok(await s.cli(['rm', '-y', n1]));
    expect(await storeHolds(n1)).toBe(false);
    expect(await lab.docker.listContainers({ all: true, filters: { label: [`tmachine.machine=${n1}`] } })).toEqual([]);
    const volumes = await lab.docker.listVolumes();
    expect((volumes.Volumes ?? []).map((v) => v.Name)).not.toContain(`${n1}-var-lib-docker`);
  });
});
