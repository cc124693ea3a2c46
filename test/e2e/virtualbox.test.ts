/**
 * Issue 16 acceptance through the CLI: `create --driver virtualbox` with the fake VBoxManage
 * first on PATH. Its VMs are real test hosts whose Debian cloud-init reads the seed ISO
 * tmachine wrote; SSH goes through the NAT port forward on 127.0.0.1, the swarm over the
 * host-only network (a docker network standing for vboxnet0, 192.168.56.0/24).
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensureCloudHostImage } from '../support/cloud-host.js';
import { repoRoot } from '../support/cli.js';
import { describeE2E, eventually, labSession, ok, prepareLab, type Lab } from '../support/lab.js';
import { startFakeVBox, type FakeVBox } from '../fakes/vboxmanage/backend.js';
import { closedPort, serveDirectory, type ImageServer } from '../fakes/vboxmanage/image-server.js';

const IMAGE = 'debian-12-generic-amd64.raw';

describeE2E('virtualbox driver (fake VBoxManage, real cloud-init hosts)', () => {
  let lab: Lab;
  let fake: FakeVBox;
  let images: ImageServer;
  const s = labSession('vb');
  const run = s.name('');
  const m1 = s.name('manager1');
  const w1 = s.name('worker1');
  const w2 = s.name('worker2');
  const published = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-vbox-images-'));
  // A private cache: the boot image download and conversion are part of what is tested.
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-vbox-cache-'));
  let env: Record<string, string> = {};

  const cli = (args: string[], extra: Record<string, string> = {}) => s.cli(args, { env: { ...env, TMACHINE_CACHE_PATH: cache, ...extra } });
  const callsSince = (n: number) => fake.calls().slice(n);
  const vmDirsLeft = () => Object.values(fake.state().vms);
  const mediaLeft = () => Object.values(fake.state().media);

  beforeAll(async () => {
    lab = await prepareLab();
    await ensureCloudHostImage(lab.docker, (m) => process.stderr.write(`[vbox] ${m}\n`));
    fake = await startFakeVBox(lab.docker, { label: 'tmachine.test', value: `vbox-${run}`, prefix: `tm-vb-${run}` });
    // The "cloud image": a small file with its published checksum; the fake never boots it.
    for (const dir of ['good', 'bad']) fs.mkdirSync(path.join(published, dir));
    const image = crypto.randomBytes(2 * 1024 * 1024);
    fs.writeFileSync(path.join(published, 'good', IMAGE), image);
    fs.writeFileSync(path.join(published, 'good', 'SHA512SUMS'), `${crypto.createHash('sha512').update(image).digest('hex')}  ${IMAGE}\n`);
    fs.writeFileSync(path.join(published, 'bad', IMAGE), image);
    fs.writeFileSync(path.join(published, 'bad', 'SHA512SUMS'), `${crypto.createHash('sha512').update('not this image').digest('hex')}  ${IMAGE}\n`);
    images = await serveDirectory(published);
    // The engine bundle comes from the shared lab cache.
    fs.mkdirSync(path.join(cache, 'bundles'), { recursive: true });
    env = { ...fake.env(), VIRTUALBOX_IMAGE_URL: `${images.url}/good/${IMAGE}` };
  });

  afterAll(async () => {
    if (lab) await s.cleanup(lab.docker).catch(() => undefined);
    await fake?.close();
    await images?.close();
    fs.rmSync(published, { recursive: true, force: true });
    fs.rmSync(cache, { recursive: true, force: true });
  });

  it('create --driver virtualbox manager1: a complete VBoxManage sequence, cloud-init read the seed, the engine answers over TLS on the host-only address', async () => {
    const before = fake.calls().length;
    ok(await cli(['create', '--driver', 'virtualbox', '--engine-bundle', lab.bundlePath, m1]));
    const calls = callsSince(before);
    const at = (what: (c: string[]) => boolean, label: string) => {
      const i = calls.findIndex(what);
      if (i < 0) throw new Error(`no ${label} call in:\n${calls.map((c) => c.join(' ')).join('\n')}`);
      return i;
    };
    const vm = Object.values(fake.state().vms).find((v) => v.name === m1)!;
    const sequence = [
      at((c) => c[0] === '--version', '--version'),
      at((c) => c.join(' ') === 'list hostinfo', 'list hostinfo'),
      at((c) => c[0] === 'convertfromraw' && c[1]!.endsWith(IMAGE), 'convertfromraw'),
      at((c) => c.join(' ') === 'hostonlyif create', 'hostonlyif create'),
      at((c) => c[0] === 'hostonlyif' && c[1] === 'ipconfig' && c.includes('192.168.56.1'), 'hostonlyif ipconfig'),
      at((c) => c[0] === 'createvm' && c.includes('--register') && c.includes(m1), 'createvm --register'),
      at((c) => c[0] === 'clonemedium', 'clonemedium'),
      at((c) => c[0] === 'modifymedium' && c.includes('--resize'), 'modifymedium --resize'),
      at((c) => c[0] === 'modifyvm' && c.includes('--nic1') && c.includes('--nic2'), 'modifyvm with the NICs'),
      at((c) => c[0] === 'storagectl' && c.includes('--add'), 'storagectl --add'),
      at((c) => c[0] === 'storageattach' && c.includes('hdd'), 'storageattach hdd'),
      at((c) => c[0] === 'storageattach' && c.includes('dvddrive'), 'storageattach dvddrive'),
      at((c) => c[0] === 'startvm' && c.join(' ').endsWith('--type headless'), 'startvm --type headless'),
    ];
    expect(sequence).toEqual([...sequence].sort((a, b) => a - b));
    const nics = calls.find((c) => c[0] === 'modifyvm' && c.includes('--nic1'))!;
    const arg = (flag: string) => nics[nics.indexOf(flag) + 1];
    expect(arg('--nic1')).toBe('nat');
    expect(arg('--nat-pf1')).toMatch(/^ssh,tcp,127\.0\.0\.1,\d+,,22$/);
    expect(arg('--nic2')).toBe('hostonly');
    expect(arg('--host-only-adapter2')).toBe('vboxnet0');
    expect(vm.state).toBe('running');

    // The seed: a cidata ISO that a standard tool reads, attached as the VM's DVD.
    const seed = vm.attachments.find((a) => a.type === 'dvddrive')!.medium;
    expect(execFileSync('blkid', ['-o', 'value', '-s', 'LABEL', seed], { encoding: 'utf8' }).trim()).toBe('cidata');
    const extracted = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-vbox-seed-'));
    execFileSync('xorriso', ['-osirrox', 'on', '-indev', seed, '-extract', '/', extracted], { stdio: 'ignore' });
    const publicKey = fs.readFileSync(path.join(s.store, 'machines', m1, 'id_ed25519.pub'), 'utf8').trim();
    expect(fs.readFileSync(path.join(extracted, 'user-data'), 'utf8')).toContain(publicKey);
    fs.rmSync(extracted, { recursive: true, force: true });

    // cloud-init's own log on the host: it took the NoCloud seed and made the user.
    const host = fake.host(m1)!;
    const log = (await host.exec(['cat', '/var/log/cloud-init.log'])).output;
    expect(log).toMatch(/DataSourceNoCloud/);
    expect(log).toContain('/var/lib/cloud/seed/nocloud');
    expect(log).toMatch(/Adding user docker/);
    expect(ok(await cli(['ssh', m1, '--', 'id', '-un'])).stdout.trim()).toBe('docker');
    expect(ok(await cli(['ssh', m1, '--', 'hostname'])).stdout.trim()).toBe(m1);
    // The SSH host key was pinned from what cloud-init printed on the serial console (console.log), and is the host's own.
    const record = JSON.parse(fs.readFileSync(path.join(s.store, 'machines', m1, 'config.json'), 'utf8')) as { ssh: { hostKey: { key: string } } };
    const consoleLog = fs.readFileSync(path.join(path.dirname(seed), 'console.log'), 'utf8');
    expect(consoleLog).toContain('-----BEGIN SSH HOST KEY KEYS-----');
    expect(consoleLog).toContain(record.ssh.hostKey.key);
    expect((await host.hostKeys()).join('\n')).toContain(record.ssh.hostKey.key);
    expect(ok(await cli(['ls', '--format', '{{.Name}} {{.DriverName}} {{.State}}'])).stdout).toContain(`${m1} virtualbox Running`);

    // The machine's address is the host-only one; the engine answers there over TLS only.
    const ip = ok(await cli(['ip', m1])).stdout.trim();
    expect(ip).toBe('192.168.56.10');
    expect(ok(await cli(['url', m1])).stdout.trim()).toBe('tcp://192.168.56.10:2376');
    const certs = path.join(s.store, 'certs');
    const tls = new Docker({ host: ip, port: 2376, protocol: 'https', ca: fs.readFileSync(path.join(certs, 'ca.pem')), cert: fs.readFileSync(path.join(certs, 'cert.pem')), key: fs.readFileSync(path.join(certs, 'key.pem')), timeout: 10_000 });
    expect((await tls.version()).Version).toContain(lab.bundleVersion);
    const server = execFileSync('openssl', ['x509', '-in', path.join(s.store, 'machines', m1, 'server.pem'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
    expect(server).toContain('IP Address:192.168.56.10');
  });

  it('the seeds flow: worker1 and worker2, then swarm bootstrap forms a swarm advertised on the host-only addresses', async () => {
    // Workers get a short ACPI grace time: the stop test below lets one ignore the button.
    ok(await cli(['create', '--driver', 'virtualbox', '--engine-bundle', lab.bundlePath, '--virtualbox-stop-timeout', '5', w1, w2]));
    const addresses = new Set([m1, w1, w2].map((n) => fake.host(n)!.ip));
    expect([...addresses].sort()).toEqual(['192.168.56.10', '192.168.56.11', '192.168.56.12']);
    ok(await cli(['swarm', 'bootstrap', '--manager', m1, '--worker', w1, '--worker', w2]));
    const nodes = ok(await cli(['ssh', m1, '--', "docker node ls --format '{{.Hostname}}={{.Status}}'"])).stdout;
    for (const n of [m1, w1, w2]) expect(nodes).toContain(`${n}=Ready`);
    const advertised = ok(await cli(['ssh', m1, '--', `docker node inspect --format '{{.Description.Hostname}}={{.Status.Addr}}' ${m1} ${w1} ${w2}`])).stdout;
    for (const n of [m1, w1, w2]) expect(advertised).toContain(`${n}=${fake.host(n)!.ip}`);
    expect(ok(await cli(['ssh', m1, '--', "docker info --format '{{.Swarm.NodeAddr}}'"])).stdout.trim()).toBe('192.168.56.10');
  });

  it('stop (ACPI, then power off after the timeout), start, kill (power off) and rm -y issue the right calls and leave no VM, disk or seed', async () => {
    const uuid = Object.values(fake.state().vms).find((v) => v.name === w2)!.uuid;
    let mark = fake.calls().length;
    ok(await cli(['stop', w2]));
    expect(callsSince(mark)).toContainEqual(['controlvm', uuid, 'acpipowerbutton']);
    expect(callsSince(mark)).not.toContainEqual(['controlvm', uuid, 'poweroff']);
    expect(ok(await cli(['status', w2])).stdout.trim()).toBe('Stopped');

    mark = fake.calls().length;
    ok(await cli(['start', w2]));
    expect(callsSince(mark)).toContainEqual(['startvm', uuid, '--type', 'headless']);
    expect(ok(await cli(['ssh', w2, '--', 'hostname'])).stdout.trim()).toBe(w2);

    mark = fake.calls().length;
    ok(await cli(['restart', w2]));
    const restart = callsSince(mark).filter((c) => c[0] === 'controlvm' || c[0] === 'startvm');
    expect(restart).toEqual([
      ['controlvm', uuid, 'acpipowerbutton'],
      ['startvm', uuid, '--type', 'headless'],
    ]);
    expect(ok(await cli(['ssh', w2, '--', 'hostname'])).stdout.trim()).toBe(w2);

    mark = fake.calls().length;
    ok(await cli(['kill', w2]));
    expect(callsSince(mark)).toContainEqual(['controlvm', uuid, 'poweroff']);
    expect(ok(await cli(['status', w2])).stdout.trim()).toBe('Stopped');

    // A guest that ignores the ACPI power button is powered off after --virtualbox-stop-timeout.
    const w1uuid = Object.values(fake.state().vms).find((v) => v.name === w1)!.uuid;
    mark = fake.calls().length;
    const ignored = ok(await cli(['stop', w1], { TMACHINE_FAKE_VBOX_FAULTS: 'acpi-ignored' }));
    const stopCalls = callsSince(mark).filter((c) => c[0] === 'controlvm');
    expect(stopCalls).toEqual([
      ['controlvm', w1uuid, 'acpipowerbutton'],
      ['controlvm', w1uuid, 'poweroff'],
    ]);
    expect(ignored.stderr).toContain(`${w1}: did not shut down within 5s of the ACPI power button; powered it off`);
    expect(ok(await cli(['status', w1])).stdout.trim()).toBe('Stopped');

    mark = fake.calls().length;
    ok(await cli(['rm', '-y', m1, w1, w2]));
    const removal = callsSince(mark);
    expect(removal.filter((c) => c[0] === 'unregistervm' && c.includes('--delete-all'))).toHaveLength(3);
    expect(removal).toContainEqual(['hostonlyif', 'remove', 'vboxnet0']);
    expect(vmDirsLeft()).toEqual([]);
    expect(mediaLeft()).toEqual([]);
    expect(fake.state().hostonlyifs).toEqual({});
    for (const n of [m1, w1, w2]) expect(fs.existsSync(path.join(s.store, 'machines', n))).toBe(false);
    expect(await lab.docker.listContainers({ all: true, filters: { label: [`tmachine.test=vbox-${run}`] } })).toEqual([]);
  });

  // Each: one line on stderr, non-zero exit, nothing left in the store or in VirtualBox.
  const nothingLeft = async (name: string) => {
    expect(fs.existsSync(path.join(s.store, 'machines', name))).toBe(false);
    expect(vmDirsLeft()).toEqual([]);
    expect(mediaLeft()).toEqual([]);
    expect(fake.state().hostonlyifs).toEqual({});
  };
  const failsWith = async (args: string[], extra: Record<string, string>, message: RegExp) => {
    const name = args.at(-1)!;
    const result = await cli(args, extra);
    expect(result.code).not.toBe(0);
    const lines = result.stderr.trim().split('\n').filter((l) => l.startsWith('Error:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at .*\(/); // no stack trace
    await nothingLeft(name);
  };

  it('no VBoxManage on PATH', async () => {
    const bare = (process.env['PATH'] ?? '').split(path.delimiter).filter((d) => !fs.existsSync(path.join(d, 'VBoxManage')) && !fs.existsSync(path.join(d, 'vboxmanage')));
    await failsWith(['create', '--driver', 'virtualbox', s.name('f1')], { PATH: bare.join(path.delimiter) }, /^Error: .*VBoxManage was not found on PATH \(install VirtualBox 7.*--virtualbox-vboxmanage/);
  });

  it('VirtualBox 6', async () => {
    await failsWith(['create', '--driver', 'virtualbox', s.name('f2')], { TMACHINE_FAKE_VBOX_FAULTS: 'version6' }, /^Error: .*VirtualBox 6\.1\.50r161033 is too old: tmachine needs VirtualBox 7\.0 or newer/);
  });

  it('hardware virtualization off', async () => {
    await failsWith(['create', '--driver', 'virtualbox', s.name('f3')], { TMACHINE_FAKE_VBOX_FAULTS: 'no-vtx' }, /^Error: .*no hardware virtualization \(VT-x\/AMD-V\).*--virtualbox-no-vtx-check/);
  });

  it('a host-only CIDR outside the range VirtualBox 7 allows', async () => {
    const before = fake.calls().length;
    await failsWith(['create', '--driver', 'virtualbox', '--virtualbox-hostonly-cidr', '10.204.9.1/24', s.name('f4')], {}, /^Error: .*--virtualbox-hostonly-cidr 10\.204\.9\.1\/24 is outside the range VirtualBox 7 allows for host-only networks \(192\.168\.56\.0\/21\)/);
    expect(callsSince(before)).toEqual([]);
  });

  it('an image URL that does not answer', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/${IMAGE}`;
    await failsWith(['create', '--driver', 'virtualbox', s.name('f5')], { VIRTUALBOX_IMAGE_URL: url }, /^Error: .*could not download the checksums of the boot image from http:\/\/127\.0\.0\.1:\d+\/SHA512SUMS: ECONNREFUSED/);
  });

  it('an image whose checksum does not match', async () => {
    await failsWith(['create', '--driver', 'virtualbox', s.name('f6')], { VIRTUALBOX_IMAGE_URL: `${images.url}/bad/${IMAGE}` }, /^Error: .*does not match its SHA512 checksum/);
  });

  it('Ctrl-C while startvm hangs: the VM, its disk, its seed and the host-only interface are removed', async () => {
    const name = s.name('f7');
    const before = fake.calls().length;
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'run.js'), 'create', '--driver', 'virtualbox', '--engine-bundle', lab.bundlePath, name], {
      env: { ...process.env, TMACHINE_STORAGE_PATH: s.store, ...env, TMACHINE_CACHE_PATH: cache, TMACHINE_FAKE_VBOX_FAULTS: 'startvm-hang' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    await eventually('startvm to be called', async () => (callsSince(before).some((c) => c[0] === 'startvm') ? true : undefined), 60_000);
    expect(Object.values(fake.state().vms).map((v) => v.name)).toEqual([name]);
    child.kill('SIGINT');
    const code = await exited;
    expect(code).toBe(130);
    expect(stderr).toMatch(/^Error: .*interrupted/m);
    const after = callsSince(before);
    expect(after.some((c) => c[0] === 'unregistervm' && c.includes('--delete-all'))).toBe(true);
    await nothingLeft(name);
  });
});
