/**
 * The virtualbox driver's parts that need no VM: the NoCloud seed ISO (read back by xorriso
 * and blkid), the fake VBoxManage's argument checks and output, and the boot image cache
 * (download, checksum, one conversion) against a local HTTP server.
 */
import { execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DriverError } from '../../drivers/kit/index.js';
import { buildIsoImage } from '../../drivers/virtualbox/iso9660.js';
import { ensureBaseDisk } from '../../drivers/virtualbox/image.js';
import { checkAllowedCidr, parseHostOnlyCidr } from '../../drivers/virtualbox/network.js';
import { seedFiles, seedImage } from '../../drivers/virtualbox/seed.js';
import { parseHostOnlyInterfaces, parseMachineReadable, parseVmList, VBoxManage } from '../../drivers/virtualbox/vboxmanage.js';
import { FAKE_VBOX_BIN } from '../fakes/vboxmanage/backend.js';
import { closedPort, serveDirectory, type ImageServer } from '../fakes/vboxmanage/image-server.js';

const execFileAsync = promisify(execFile);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-vbox-unit-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function xorrisoExtract(iso: string, name: string): string {
  const target = path.join(work, `extract-${crypto.randomUUID()}`);
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', `/${name}`, target], { stdio: 'ignore' });
  return fs.readFileSync(target, 'utf8');
}

describe('NoCloud seed ISO written in TypeScript', () => {
  const files = seedFiles({
    instanceId: 'tmachine-0f7a3c4e',
    hostname: 'manager1',
    sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheSeedTest tmachine-manager1',
    natMac: '080027AABBCC',
    hostOnlyMac: '080027DDEEFF',
    hostOnlyAddress: '192.168.56.10',
    hostOnlyPrefix: 24,
  });
  const iso = path.join(work, 'seed.iso');
  beforeAll(() => fs.writeFileSync(iso, seedImage(files)));

  it('is an ISO 9660 volume labelled cidata (blkid and xorriso agree)', () => {
    const blkid = execFileSync('blkid', ['-o', 'export', iso], { encoding: 'utf8' });
    expect(blkid).toMatch(/^TYPE=iso9660$/m);
    expect(blkid).toMatch(/^LABEL=cidata$/m);
    const pvd = execFileSync('xorriso', ['-indev', iso, '-pvd_info'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(pvd).toMatch(/^Volume Id\s*:\s*cidata$/m);
  });

  it('lists meta-data, user-data and network-config under their Joliet names, with their exact contents', () => {
    const listing = execFileSync('xorriso', ['-indev', iso, '-ls', '/'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(listing.trim().split('\n').map((l) => l.replace(/'/g, ''))).toEqual(['meta-data', 'network-config', 'user-data']);
    expect(xorrisoExtract(iso, 'meta-data')).toBe(files.metaData);
    expect(xorrisoExtract(iso, 'user-data')).toBe(files.userData);
    expect(xorrisoExtract(iso, 'network-config')).toBe(files.networkConfig);
  });

  it('the seed says what cloud-init needs: instance id, hostname, the user with the key and sudo, the host-only address by MAC', () => {
    expect(files.metaData).toContain('instance-id: tmachine-0f7a3c4e');
    expect(files.metaData).toContain('local-hostname: manager1');
    expect(files.userData.startsWith('#cloud-config\n')).toBe(true);
    expect(files.userData).toContain('name: docker');
    expect(files.userData).toContain('sudo: ALL=(ALL) NOPASSWD:ALL');
    expect(files.userData).toContain('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheSeedTest');
    expect(files.networkConfig).toContain('macaddress: 08:00:27:dd:ee:ff');
    expect(files.networkConfig).toContain('- 192.168.56.10/24');
  });

  it('a file larger than one sector and many files read back intact; sizes round up to 2048-byte sectors', () => {
    const big = crypto.randomBytes(5000).toString('base64');
    const image = buildIsoImage({ volumeId: 'cidata', files: [{ name: 'big.txt', content: big }, ...Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, content: `file ${i}\n` }))] });
    expect(image.length % 2048).toBe(0);
    const file = path.join(work, 'big.iso');
    fs.writeFileSync(file, image);
    expect(xorrisoExtract(file, 'big.txt')).toBe(big);
    expect(xorrisoExtract(file, 'f17')).toBe('file 17\n');
  });

  it('refuses names and labels ISO 9660 cannot carry', () => {
    expect(() => buildIsoImage({ volumeId: 'a-label-longer-than-16', files: [] })).toThrow('must be 1-16 printable ASCII characters');
    expect(() => buildIsoImage({ volumeId: 'cidata', files: [{ name: 'a/b', content: '' }] })).toThrow("without '/' or ';'");
  });
});

describe('host-only CIDR', () => {
  it('accepts a host address inside 192.168.56.0/21 and refuses the rest with the range in the message', () => {
    const cidr = parseHostOnlyCidr('192.168.57.1/24');
    expect(cidr).toEqual({ hostIp: '192.168.57.1', prefix: 24, mask: '255.255.255.0', network: '192.168.57.0' });
    expect(() => checkAllowedCidr(cidr, '192.168.57.1/24')).not.toThrow();
    expect(() => checkAllowedCidr(parseHostOnlyCidr('192.168.99.1/24'), '192.168.99.1/24')).toThrow('outside the range VirtualBox 7 allows for host-only networks (192.168.56.0/21)');
    expect(() => parseHostOnlyCidr('192.168.56.0/24')).toThrow('names the network, not a host address');
  });
});

describe('fake VBoxManage: arguments checked and output printed as VirtualBox 7 does', () => {
  const home = path.join(work, 'vbox-home');
  const vbm = (args: string[], faults = '') =>
    execFileAsync(path.join(FAKE_VBOX_BIN, 'VBoxManage'), args, { env: { ...process.env, TMACHINE_FAKE_VBOX_HOME: home, TMACHINE_FAKE_VBOX_FAULTS: faults } }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('answers --version, and 6.1 under the VirtualBox 6 fault', async () => {
    expect((await vbm(['--version'])).stdout.trim()).toMatch(/^7\.\d+\.\d+r\d+$/);
    expect((await vbm(['--version'], 'version6')).stdout.trim()).toBe('6.1.50r161033');
  });

  it('an unknown option or a missing required one is a syntax error (exit 2, VirtualBox message); a missing VM exits 1', async () => {
    const unknown = await vbm(['createvm', '--name', 'x', '--frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('VBoxManage: error: Unknown option: --frobnicate\n');
    const missing = await vbm(['createvm', '--register']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('VBoxManage: error: Parameter --name is required\n');
    const noValue = await vbm(['modifyvm', 'x', '--memory']);
    expect(noValue.code).toBe(2);
    expect(noValue.stderr).toContain('--memory');
    const nope = await vbm(['showvminfo', 'nope', '--machinereadable']);
    expect(nope.code).toBe(1);
    expect(nope.stderr.split('\n')[0]).toBe("VBoxManage: error: Could not find a registered machine named 'nope'");
  });

  it('createvm --register, modifyvm with NICs and a port forward, then list vms and showvminfo --machinereadable', async () => {
    const created = await vbm(['createvm', '--name', 'unit1', '--basefolder', path.join(work, 'vms'), '--ostype', 'Debian_64', '--register']);
    expect(created.code).toBe(0);
    const uuid = /^UUID: (\S+)$/m.exec(created.stdout)![1]!;
    expect(created.stdout).toContain(`Settings file: '${path.join(work, 'vms', 'unit1', 'unit1.vbox')}'`);
    const modified = await vbm(['modifyvm', uuid, '--memory', '2048', '--cpus', '2', '--nic1', 'nat', '--nic-type1', 'virtio', '--natpf1', 'ssh,tcp,127.0.0.1,42365,,22', '--nic2', 'hostonly', '--hostonlyadapter2', 'vboxnet0']);
    expect(modified).toMatchObject({ code: 0, stderr: '' });
    expect(parseVmList((await vbm(['list', 'vms'])).stdout)).toContainEqual({ name: 'unit1', uuid });
    const info = parseMachineReadable((await vbm(['showvminfo', 'unit1', '--machinereadable'])).stdout);
    expect(info.get('VMState')).toBe('poweroff');
    expect(info.get('memory')).toBe('2048');
    expect(info.get('nic1')).toBe('nat');
    expect(info.get('nictype1')).toBe('virtio');
    expect(info.get('Forwarding(0)')).toBe('ssh,tcp,127.0.0.1,42365,,22');
    expect(info.get('nic2')).toBe('hostonly');
    expect(info.get('hostonlyadapter2')).toBe('vboxnet0');
    const badRule = await vbm(['modifyvm', uuid, '--natpf1', 'ssh,tcp,127.0.0.1,notaport,,22']);
    expect(badRule.code).toBe(1);
    expect(badRule.stderr).toContain('Invalid NAT port-forwarding rule');
    const badType = await vbm(['modifyvm', uuid, '--nic-type2', 'e1000']);
    expect(badType.code).toBe(1);
  });

  it('hostonlyif create names vboxnetN; ipconfig outside 192.168.56.0/21 is refused (E_ACCESSDENIED); list hostonlyifs shows the block', async () => {
    const created = await vbm(['hostonlyif', 'create']);
    const name = /Interface '(vboxnet\d+)' was successfully created/.exec(created.stdout)![1]!;
    const refused = await vbm(['hostonlyif', 'ipconfig', name, '--ip', '10.204.1.1', '--netmask', '255.255.255.0']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('E_ACCESSDENIED');
    expect((await vbm(['hostonlyif', 'ipconfig', name, '--ip', '192.168.58.1', '--netmask', '255.255.255.0'])).code).toBe(0);
    expect(parseHostOnlyInterfaces((await vbm(['list', 'hostonlyifs'])).stdout)).toContainEqual({ name, ip: '192.168.58.1', mask: '255.255.255.0', status: 'Up' });
  });

  it('reports hardware virtualization in list hostinfo, and its absence under the VT-x fault', async () => {
    expect((await vbm(['list', 'hostinfo'])).stdout).toMatch(/^Processor supports HW virtualization: yes$/m);
    expect((await vbm(['list', 'hostinfo'], 'no-vtx')).stdout).toMatch(/^Processor supports HW virtualization: no$/m);
  });

  it('the driver detects VirtualBox 7 through it, and says why not without it', async () => {
    const { definition } = await import('../../drivers/virtualbox/definition.js');
    const saved = process.env['PATH'];
    try {
      process.env['PATH'] = `${FAKE_VBOX_BIN}${path.delimiter}${saved ?? ''}`;
      process.env['TMACHINE_FAKE_VBOX_HOME'] = home;
      expect(await definition.detect!()).toMatchObject({ usable: true, reason: expect.stringMatching(/^VirtualBox 7\.\d+\.\d+r\d+ /) });
      process.env['PATH'] = '/nonexistent';
      expect(await definition.detect!()).toEqual({ usable: false, reason: 'VBoxManage was not found on PATH' });
    } finally {
      process.env['PATH'] = saved;
      delete process.env['TMACHINE_FAKE_VBOX_HOME'];
    }
  });

  it('records every call in order', () => {
    const calls = fs
      .readFileSync(path.join(home, 'calls.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { argv: string[] }).argv);
    expect(calls[0]).toEqual(['--version']);
    expect(calls.some((c) => c[0] === 'createvm' && c.includes('--register'))).toBe(true);
  });
});

describe('boot image: downloaded once, checked against SHA512SUMS, converted once', () => {
  const published = path.join(work, 'published');
  const cacheDir = path.join(work, 'cache');
  const home = path.join(work, 'image-vbox-home');
  let server: ImageServer;
  let vbox: VBoxManage;
  const image = crypto.randomBytes(3 * 1024 * 1024);
  const request = (source: string, extra: Partial<Parameters<typeof ensureBaseDisk>[1]> = {}) => ({
    source,
    cacheDir,
    signal: new AbortController().signal,
    report: () => undefined,
    ...extra,
  });
  const conversions = () =>
    fs
      .readFileSync(path.join(home, 'calls.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"convertfromraw"')).length;

  beforeAll(async () => {
    fs.mkdirSync(path.join(published, 'good'), { recursive: true });
    fs.mkdirSync(path.join(published, 'bad'), { recursive: true });
    fs.mkdirSync(path.join(published, 'nosums'), { recursive: true });
    fs.writeFileSync(path.join(published, 'good', 'debian-12-generic-amd64.raw'), image);
    fs.writeFileSync(path.join(published, 'good', 'SHA512SUMS'), `${crypto.createHash('sha512').update(image).digest('hex')}  debian-12-generic-amd64.raw\n`);
    fs.writeFileSync(path.join(published, 'bad', 'debian-12-generic-amd64.raw'), image);
    fs.writeFileSync(path.join(published, 'bad', 'SHA512SUMS'), `${crypto.createHash('sha512').update('something else').digest('hex')}  debian-12-generic-amd64.raw\n`);
    fs.writeFileSync(path.join(published, 'nosums', 'disk.raw'), image);
    server = await serveDirectory(published);
    // A wrapper so the fake keeps its state in this test's home.
    const wrapper = path.join(work, 'VBoxManage');
    fs.writeFileSync(wrapper, `#!/bin/sh\nTMACHINE_FAKE_VBOX_HOME=${home} exec ${path.join(FAKE_VBOX_BIN, 'VBoxManage')} "$@"\n`, { mode: 0o755 });
    vbox = new VBoxManage(wrapper);
  });
  afterAll(async () => server?.close());

  it('downloads the image and its SHA512SUMS from the server, converts it to a VDI, and reuses both the second time', async () => {
    const url = `${server.url}/good/debian-12-generic-amd64.raw`;
    const first = await ensureBaseDisk(vbox, request(url));
    expect(first.verifiedWith).toBe(`SHA512 from ${server.url}/good/SHA512SUMS`);
    expect(fs.readFileSync(first.vdiPath, 'utf8')).toContain('<<< Oracle VM VirtualBox Disk Image >>>');
    expect(server.requests.filter((r) => r === '/good/debian-12-generic-amd64.raw')).toHaveLength(1);
    expect(conversions()).toBe(1);
    const [a, b] = await Promise.all([ensureBaseDisk(vbox, request(url)), ensureBaseDisk(vbox, request(url))]);
    expect(a.vdiPath).toBe(first.vdiPath);
    expect(b.vdiPath).toBe(first.vdiPath);
    expect(server.requests.filter((r) => r === '/good/debian-12-generic-amd64.raw')).toHaveLength(1);
    expect(conversions()).toBe(1);
  });

  it('an image whose checksum does not match is refused and not kept', async () => {
    const url = `${server.url}/bad/debian-12-generic-amd64.raw`;
    const failure = await ensureBaseDisk(vbox, request(url)).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(DriverError);
    expect((failure as DriverError).message).toMatch(/does not match its SHA512 checksum from .*\/bad\/SHA512SUMS/);
    const dir = path.join(cacheDir, 'virtualbox', 'images', `${crypto.createHash('sha256').update(url).digest('hex').slice(0, 12)}-debian-12-generic-amd64.raw`);
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(conversions()).toBe(1);
  });

  it('a server that does not answer is an unreachable error naming the URL', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/debian-12-generic-amd64.raw`;
    const failure = (await ensureBaseDisk(vbox, request(url)).catch((e: unknown) => e)) as DriverError;
    expect(failure.kind).toBe('unreachable');
    expect(failure.message).toContain('could not download the checksums of the boot image from http://127.0.0.1:');
    expect(failure.message).toContain('ECONNREFUSED');
  });

  it('a server that accepts the connection but never answers ends the download after the stall time', async () => {
    const held: net.Socket[] = [];
    const silent = net.createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const failure = (await ensureBaseDisk(vbox, request(`http://127.0.0.1:${port}/${'debian-12-generic-amd64.raw'}`, { stallMs: 1_000 })).catch((e: unknown) => e)) as DriverError;
      expect(failure.kind).toBe('unreachable');
      expect(failure.message).toBe(`could not download the checksums of the boot image from http://127.0.0.1:${port}/SHA512SUMS: no answer within 1s`);
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });

  it('an image with no checksum file next to it needs --virtualbox-image-checksum, which then is used', async () => {
    const url = `${server.url}/nosums/disk.raw`;
    const failure = (await ensureBaseDisk(vbox, request(url)).catch((e: unknown) => e)) as DriverError;
    expect(failure.message).toContain('no checksum file next to the boot image');
    const given = `sha256:${crypto.createHash('sha256').update(image).digest('hex')}`;
    expect((await ensureBaseDisk(vbox, request(url, { checksum: given }))).verifiedWith).toBe('SHA256 from --virtualbox-image-checksum');
  });

  it('a local file is accepted (checked when SHA512SUMS sits next to it)', async () => {
    const local = await ensureBaseDisk(vbox, request(path.join(published, 'good', 'debian-12-generic-amd64.raw')));
    expect(local.verifiedWith).toBe(`SHA512 from ${path.join(published, 'good', 'SHA512SUMS')}`);
    const bad = await ensureBaseDisk(vbox, request(path.join(published, 'bad', 'debian-12-generic-amd64.raw'))).catch((e: unknown) => e);
    expect((bad as DriverError).message).toContain('does not match its SHA512 checksum');
  });
});
