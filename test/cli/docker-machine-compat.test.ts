/**
 * Issue 18 without hosts of its own: a Docker Machine 0.16 store whose generic machine is a
 * real OpenSSH server on 127.0.0.1 (imported, then reached with ssh/scp), Docker Machine's
 * output formats and templates, its flags (the doc table and the refusal line), and shell
 * completion run through bash's own completion machinery.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderDockerMachineDoc } from '../../src/cli/docker-machine-flags.js';
import { renderGoTemplate, goMap } from '../../src/cli/go-template.js';
import { machineNames } from '../../src/cli/names.js';
import { Store } from '../../src/store/store.js';
import { startSshd, type TestSshd } from '../support/sshd.js';
import { repoRoot, runCli, tempStore } from '../support/cli.js';
import { genericRecord } from '../support/records.js';
import { treeChecksum, writeDockerMachineMachine } from '../support/docker-machine-store.js';

describe('Docker Machine formats, flags and templates (no host)', () => {
  const store = tempStore();
  afterAll(() => store.cleanup());
  const cli = (args: string[], env?: Record<string, string>) => runCli(args, { store: store.path, ...(env ? { env } : {}) });

  beforeAll(async () => {
    const s = await Store.open(store.path);
    await s.reserve({
      ...genericRecord('web1', '127.0.0.1'),
      engine: { ...genericRecord('x', '1').engine, labels: ['role=web', 'tier=front'], opts: ['dns=8.8.8.8'] },
      provisioned: { at: new Date().toISOString() },
    });
    await s.reserve({ ...genericRecord('db1', '127.0.0.2'), engine: { ...genericRecord('x', '1').engine, labels: ['role=db'] } });
  });

  it("docs/docker-machine.md is the table of every Docker Machine 0.16 flag (kept equal to the code's list)", () => {
    const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'docker-machine.md'), 'utf8');
    expect(doc).toBe(renderDockerMachineDoc());
    for (const flag of ['--amazonec2-region', '--google-project', '--virtualbox-memory', '--generic-ip-address', '--engine-opt', '--swarm-master', '--virtualbox-boot2docker-url']) {
      expect(doc).toMatch(new RegExp(`\\| \`${flag}\` \\|`));
    }
    expect(fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8')).toContain('docs/docker-machine.md');
  });

  it("the table says what each installed driver really does with Docker Machine's flags", async () => {
    const { DOCKER_MACHINE_FLAGS } = await import('../../src/cli/docker-machine-flags.js');
    const { builtInDriverNames, loadDriverDefinition, canonicalDriverName } = await import('../../drivers/registry.js');
    const installed = new Set(builtInDriverNames());
    const checked: string[] = [];
    for (const group of DOCKER_MACHINE_FLAGS.filter((g) => ['amazonec2', 'google', 'virtualbox', 'generic'].includes(g.group))) {
      const driver = canonicalDriverName(group.group);
      // Drivers that have not landed yet are checked when they do.
      if (!installed.has(driver)) continue;
      const definition = await loadDriverDefinition(driver);
      const accepted = new Set(definition.flags.flatMap((f) => [f.name, ...(f.aliases ?? [])]));
      for (const f of group.flags) {
        if (f.status === 'unsupported') expect(accepted.has(f.flag), `--${f.flag} is marked not supported but ${driver} takes it`).toBe(false);
        else expect(accepted.has(f.flag), `--${f.flag} is marked ${f.status} but ${driver} does not take it`).toBe(true);
        if (f.status === 'renamed') expect(accepted.has(f.tmachine!), `--${f.tmachine} is not a flag of ${driver}`).toBe(true);
      }
      checked.push(driver);
    }
    expect(checked).toContain('generic');
    const help = (await cli(['create', '--help'])).stdout;
    for (const f of DOCKER_MACHINE_FLAGS.find((g) => g.group === 'engine')!.flags) {
      if (f.status === 'unsupported') expect(help).not.toContain(`--${f.flag} `);
      else expect(help).toContain(`--${f.flag}`);
    }
  });

  it('an unsupported Docker Machine flag is one line naming it and its row', async () => {
    const r = await cli(['create', '--driver', 'virtualbox', '--virtualbox-boot2docker-url', 'http://x/b2d.iso', 'vb1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--virtualbox-boot2docker-url is a Docker Machine flag tmachine does not support: boot2docker is retired.*see docs\/docker-machine\.md, section "virtualbox", row --virtualbox-boot2docker-url/);
    const classic = await cli(['create', '--driver', 'generic', '--swarm-master', 'g1']);
    expect(classic.stderr).toMatch(/--swarm-master is a Docker Machine flag tmachine does not support: classic Swarm .* is retired/);
    const keypair = await cli(['create', '--driver', 'amazonec2', '--amazonec2-keypair-name', 'mine', 'a1']);
    expect(keypair.stderr).toMatch(/^Error: --amazonec2-keypair-name is a Docker Machine flag tmachine does not support: .*row --amazonec2-keypair-name\)\n$/);
    const invented = await cli(['create', '--driver', 'amazonec2', '--amazonec2-xyz', 'a1']);
    expect(invented.stderr.trim().split('\n')).toHaveLength(1);
    expect(invented.stderr).toMatch(/--amazonec2-xyz is neither a flag of Docker Machine 0\.16's amazonec2 driver nor of tmachine/);
  });

  it("inspect prints Docker Machine's host JSON next to tmachine's record; --format json keeps tmachine's record alone", async () => {
    const r = await cli(['inspect', 'web1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\{\n {4}"ConfigVersion": 3,/);
    const host = JSON.parse(r.stdout) as Record<string, any>;
    expect(Object.keys(host).slice(0, 5)).toEqual(['ConfigVersion', 'Driver', 'DriverName', 'HostOptions', 'Name']);
    // tmachine's own fields, as `inspect` printed them before (scripts read .engine, .addresses).
    expect(host['name']).toBe('web1');
    expect(host['addresses']).toEqual({ public: '127.0.0.1' });
    expect(host['engine'].labels).toEqual(['role=web', 'tier=front']);
    expect(host['Driver']).toMatchObject({ IPAddress: '127.0.0.1', MachineName: 'web1', SSHUser: 'root', SSHPort: 1, StorePath: store.path });
    expect(host['Driver'].SSHKeyPath).toBe(path.join(store.path, 'machines', 'web1', 'id_ed25519'));
    expect(host['DriverName']).toBe('generic');
    expect(host['HostOptions'].EngineOptions).toMatchObject({ Labels: ['role=web', 'tier=front'], ArbitraryFlags: ['dns=8.8.8.8'], TlsVerify: true });
    expect(host['HostOptions'].AuthOptions.CaCertPath).toBe(path.join(store.path, 'machines', 'web1', 'ca.pem'));
    const own = JSON.parse((await cli(['inspect', 'web1', '--format', 'json'])).stdout) as { name: string; driver: { name: string } };
    expect(own.name).toBe('web1');
    expect(own.driver.name).toBe('generic');
    expect(Object.keys(own)).not.toContain('ConfigVersion');
  });

  it('inspect --format takes Go templates over that JSON', async () => {
    expect((await cli(['inspect', 'web1', '--format', '{{.Driver.IPAddress}}'])).stdout).toBe('127.0.0.1\n');
    expect((await cli(['inspect', '-f', '{{.HostOptions.AuthOptions.CaCertPath}}', 'web1'])).stdout.trim()).toBe(path.join(store.path, 'machines', 'web1', 'ca.pem'));
    const driver = JSON.parse((await cli(['inspect', 'web1', '--format', '{{json .Driver}}'])).stdout) as { IPAddress: string };
    expect(driver.IPAddress).toBe('127.0.0.1');
    expect((await cli(['inspect', 'web1', '--format', '{{range .HostOptions.EngineOptions.Labels}}[{{.}}]{{end}}'])).stdout.trim()).toBe('[role=web][tier=front]');
    expect((await cli(['inspect', 'web1', '--format', '{{if .HostOptions.EngineOptions.TlsVerify}}tls{{else}}plain{{end}} {{.Name | upper}}'])).stdout.trim()).toBe('tls WEB1');
    const unknown = await cli(['inspect', 'web1', '--format', '{{.Driver.Nope}}']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/can't evaluate field Nope/);
  });

  it('ls --format with Docker Machine fields and ls --filter driver=, name=, label=, state=', async () => {
    const names = await cli(['ls', '--format', '{{.Name}} {{.DriverName}} {{.Active}}']);
    expect(names.code, names.stderr).toBe(0);
    expect(names.stdout.trim().split('\n')).toEqual(['db1 generic -', 'web1 generic -']);
    expect((await cli(['ls', '-q', '--filter', 'label=role=web'])).stdout.trim()).toBe('web1');
    expect((await cli(['ls', '-q', '--filter', 'label=role'])).stdout.trim().split('\n')).toEqual(['db1', 'web1']);
    expect((await cli(['ls', '-q', '--filter', 'name=^db'])).stdout.trim()).toBe('db1');
    expect((await cli(['ls', '-q', '--filter', 'driver=docker'])).stdout.trim()).toBe('');
    // Nothing listens on port 1: the generic driver reports these hosts as not running.
    const states = await cli(['ls', '--timeout', '5', '--format', '{{.Name}}={{.State}}']);
    expect(states.stdout.trim().split('\n').every((l) => /^(db1|web1)=(Error|Stopped|Timeout)$/.test(l)), states.stdout).toBe(true);
    expect((await cli(['ls', '-q', '--timeout', '5', '--filter', 'state=Running'])).stdout.trim()).toBe('');
    const bad = await cli(['ls', '--filter', 'colour=red']);
    expect(bad.stderr).toMatch(/unknown filter "colour=red" \(use driver=, state=, name=, label= or swarm=\)/);
  });

  it('env, ip, url and config print what docker-machine printed', async () => {
    const env = await cli(['env', '--shell', 'bash', 'web1']);
    expect(env.stdout.split('\n').slice(0, 4)).toEqual([
      'export DOCKER_TLS_VERIFY="1"',
      'export DOCKER_HOST="tcp://127.0.0.1:2376"',
      `export DOCKER_CERT_PATH="${path.join(store.path, 'machines', 'web1')}"`,
      'export DOCKER_MACHINE_NAME="web1"',
    ]);
    expect((await cli(['env', '--shell', 'fish', 'web1'])).stdout).toContain('set -gx DOCKER_HOST "tcp://127.0.0.1:2376";');
    expect((await cli(['env', '--shell', 'bash', '--no-proxy', 'web1'], { NO_PROXY: 'corp.example' })).stdout).toContain('export NO_PROXY="corp.example,127.0.0.1"');
    expect((await cli(['env', '-u', '--shell', 'bash'])).stdout.split('\n').slice(0, 4)).toEqual(['unset DOCKER_TLS_VERIFY', 'unset DOCKER_HOST', 'unset DOCKER_CERT_PATH', 'unset DOCKER_MACHINE_NAME']);
    expect((await cli(['env', '--shell', 'cmd', 'web1'])).stdout).toContain('SET DOCKER_HOST=tcp://127.0.0.1:2376');
    expect((await cli(['env', '--shell', 'powershell', 'web1'])).stdout).toContain('$Env:DOCKER_HOST = "tcp://127.0.0.1:2376"');
    expect((await cli(['ip', 'web1', 'db1'])).stdout).toBe('127.0.0.1\n127.0.0.2\n');
    expect((await cli(['url', 'web1'])).stdout).toBe('tcp://127.0.0.1:2376\n');
    const dir = path.join(store.path, 'machines', 'web1');
    expect((await cli(['config', 'web1'])).stdout).toBe(`--tlsverify\n--tlscacert="${dir}/ca.pem"\n--tlscert="${dir}/cert.pem"\n--tlskey="${dir}/key.pem"\n-H=tcp://127.0.0.1:2376\n`);
    expect((await cli(['version'])).stdout).toMatch(/^tmachine version \d+\.\d+\.\d+\n$/);
  });

  it('create -n 3 --prefix worker names worker1..3, skipping names taken', async () => {
    const s = await Store.open(store.path);
    await s.reserve(genericRecord('worker2', '127.0.0.1'));
    expect(await machineNames(s, [], 3, 'worker')).toEqual(['worker1', 'worker3', 'worker4']);
    expect(await machineNames(s, ['a', 'b', 'c'], undefined, undefined)).toEqual(['a', 'b', 'c']);
    await expect(machineNames(s, ['a', 'a'], undefined, undefined)).rejects.toThrow(/machine name "a" is given twice/);
    const both = await cli(['create', '--driver', 'generic', '-n', '2', '--prefix', 'w', 'x1']);
    expect(both.stderr).toMatch(/give machine names or --count, not both/);
  });

  it('the Go template subset behaves as text/template', () => {
    expect(renderGoTemplate('{{.A}}-{{ .B.C }}', { A: 'x', B: { C: 2 } })).toBe('x-2');
    expect(renderGoTemplate('{{range .L}}{{.}},{{end}}', { L: ['a', 'b'] })).toBe('a,b,');
    expect(renderGoTemplate('{{.L}} {{.M}}', { L: ['a', 'b'], M: goMap({ k: 'v' }) })).toBe('[a b] map[k:v]');
    expect(renderGoTemplate('{{.M.missing}}', { M: goMap({}) })).toBe('<no value>');
    expect(renderGoTemplate('{{json .}}', { a: '<b>' })).toBe('{"a":"\\u003cb\\u003e"}');
    expect(renderGoTemplate('{{- " x " -}} {{printf "%s:%d" .A 3}}', { A: 'p' })).toBe(' x p:3');
    expect(() => renderGoTemplate('{{if .A}}x', { A: 1 })).toThrow(/missing \{\{end\}\}/);
  });
});

describe('completion', () => {
  const store = tempStore();
  afterAll(() => store.cleanup());

  it('generates for bash, zsh and fish; the bash function completes commands, flags and machine names', async () => {
    const s = await Store.open(store.path);
    await s.reserve(genericRecord('manager1', '127.0.0.1'));
    await s.reserve(genericRecord('worker1', '127.0.0.1'));
    for (const shell of ['bash', 'zsh', 'fish']) {
      const r = await runCli(['completion', shell], { store: store.path });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('ls -q');
    }
    const script = (await runCli(['completion', 'bash'], { store: store.path })).stdout;
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bin-'));
    try {
      // `tmachine` on PATH, as after `npm link`.
      fs.writeFileSync(path.join(bin, 'tmachine'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(repoRoot, 'bin', 'run.js')}" "$@"\n`, { mode: 0o755 });
      fs.writeFileSync(path.join(bin, 'completion.bash'), script);
      const complete = (line: string) => {
        const words = line.split(' ');
        const program = `source ${path.join(bin, 'completion.bash')}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_tmachine_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
        const r = spawnSync('bash', ['-c', program], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env['PATH']}`, TMACHINE_STORAGE_PATH: store.path } });
        return r.stdout.trim().split('\n').filter(Boolean);
      };
      expect(complete('tmachine ssh ')).toEqual(['manager1', 'worker1']);
      expect(complete('tmachine ssh man')).toEqual(['manager1']);
      expect(complete('tmachine swarm boo')).toEqual(['bootstrap']);
      expect(complete('tmachine ins')).toEqual(['inspect']);
      expect(complete('tmachine ls --fil')).toEqual(['--filter']);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe('import from a Docker Machine store, ssh and scp on the imported machine (real sshd)', () => {
  let sshd: TestSshd;
  const store = tempStore();
  const dm = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-dm-store-'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-dm-work-'));
  let before = '';
  const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { store: store.path, env: { MACHINE_STORAGE_PATH: dm, ...env } });

  beforeAll(async () => {
    sshd = await startSshd();
    writeDockerMachineMachine(dm, 'legacy1', 'generic', { IPAddress: sshd.host, SSHUser: sshd.user, SSHPort: sshd.port, EnginePort: 2376, SSHKey: '' }, {
      id_rsa: sshd.clientPrivateKey,
      'ca.pem': 'CA\n',
      'cert.pem': 'CERT\n',
      'key.pem': 'KEY\n',
      'server.pem': 'SERVER\n',
      'server-key.pem': 'SERVERKEY\n',
    }, { Labels: ['owner=ops'], ArbitraryFlags: ['dns=8.8.8.8'] });
    // Addresses on 127.0.0.x and SSH ports nothing listens on: the first contact import makes
    // stays on this machine (no cloud is asked: import reads config.json only).
    writeDockerMachineMachine(dm, 'aws1', 'amazonec2', { IPAddress: '127.0.0.3', SSHPort: 1, SSHUser: 'ubuntu', InstanceId: 'i-0123456789abcdef0', Region: 'eu-west-1', Zone: 'a' }, { id_rsa: 'k' });
    writeDockerMachineMachine(dm, 'gce1', 'google', { IPAddress: '127.0.0.4', SSHPort: 1, Project: 'p', Zone: 'europe-west1-b' }, { id_rsa: 'k' });
    writeDockerMachineMachine(dm, 'vbox1', 'virtualbox', { IPAddress: '127.0.0.5', SSHPort: 1, CPU: 1, Memory: 1024 }, { id_rsa: 'k' });
    writeDockerMachineMachine(dm, 'dobox', 'digitalocean', { IPAddress: '127.0.0.6' }, { id_rsa: 'k' });
    before = treeChecksum(dm);
  });
  afterAll(async () => {
    await sshd?.stop();
    store.cleanup();
    fs.rmSync(dm, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('adopts the generic machine, says why each other one was skipped, and leaves the Docker Machine store unchanged', async () => {
    const r = await cli(['import']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/imported legacy1 \(generic, 127\.0\.0\.1\)/);
    // Cloud and VM machines keep their identity for their driver (rm through it: import-ec2.test.ts).
    const identity = (name: string) => (JSON.parse(fs.readFileSync(path.join(store.path, 'machines', name, 'config.json'), 'utf8')) as { driver: { state: Record<string, unknown> } }).driver.state;
    // The ec2/gce/virtualbox drivers have not landed here: each such machine is one line.
    const installed = new Set((await import('../../drivers/registry.js')).builtInDriverNames());
    for (const [name, dmDriver, driver] of [
      ['aws1', 'amazonec2', 'ec2'],
      ['gce1', 'google', 'gce'],
      ['vbox1', 'virtualbox', 'virtualbox'],
    ] as const) {
      if (installed.has(driver)) {
        expect(r.stderr).toMatch(new RegExp(`imported ${name} \\(${driver}`));
        if (driver === 'ec2') expect(identity(name)).toMatchObject({ instanceId: 'i-0123456789abcdef0', region: 'eu-west-1', zone: 'eu-west-1a' });
        if (driver === 'virtualbox') expect(identity(name)).toMatchObject({ vmName: 'vbox1', sshPort: 1 });
        if (driver === 'gce') expect(identity(name)).toMatchObject({ project: 'p', zone: 'europe-west1-b' });
      }
      else expect(r.stderr).toMatch(new RegExp(`skipped ${name}: Docker Machine driver "${dmDriver}" is tmachine's "${driver}" driver, which this tmachine does not have yet`));
    }
    expect(r.stderr).toMatch(/skipped dobox: driver "digitalocean" has no tmachine equivalent/);
    expect(treeChecksum(dm)).toBe(before);

    const record = JSON.parse(fs.readFileSync(path.join(store.path, 'machines', 'legacy1', 'config.json'), 'utf8')) as Record<string, any>;
    expect(record['driver'].name).toBe('generic');
    expect(record['ssh']).toMatchObject({ user: sshd.user, host: sshd.host, port: sshd.port, keyPath: 'id_rsa' });
    // Pinned on the first contact, which import makes.
    expect(record['ssh'].hostKey.fingerprint).toMatch(/^SHA256:/);
    expect(record['engine']).toMatchObject({ install: 'none', labels: ['owner=ops'], opts: ['dns=8.8.8.8'] });
    const dir = path.join(store.path, 'machines', 'legacy1');
    expect(fs.readFileSync(path.join(dir, 'server.pem'), 'utf8')).toBe('SERVER\n');
    expect(fs.statSync(path.join(dir, 'id_rsa')).mode & 0o777).toBe(0o600);
    const again = await cli(['import', 'legacy1']);
    expect(again.stderr).toMatch(/skipped legacy1: a tmachine machine named "legacy1" exists already/);
  });

  it('ssh runs a quoted command and the -- form, as docker-machine ssh did', async () => {
    const quoted = await cli(['ssh', 'legacy1', 'echo one two three | wc -w']);
    expect(quoted.code, quoted.stderr).toBe(0);
    expect(quoted.stdout.trim()).toBe('3');
    const words = await cli(['ssh', 'legacy1', '--', 'printf', '%s-', 'a', 'b']);
    expect(words.stdout).toBe('a-b-');
    const ip = (await cli(['ip', 'legacy1'])).stdout.trim();
    const nested = await cli(['ssh', 'legacy1', `echo advertise=${ip}`]);
    expect(nested.stdout.trim()).toBe(`advertise=${sshd.host}`);
  });

  it('scp -r -d sends only what changed; -q prints nothing', async () => {
    const tree = path.join(work, 'site');
    fs.mkdirSync(path.join(tree, 'css'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'index.html'), '<h1>one</h1>');
    fs.writeFileSync(path.join(tree, 'css', 'a.css'), 'body{}');
    const remote = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-dm-remote-'));
    fs.chmodSync(remote, 0o777);
    const first = await cli(['scp', '-r', '-d', tree, `legacy1:${remote}`]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/2 file\(s\) copied, 0 unchanged/);
    fs.writeFileSync(path.join(tree, 'index.html'), '<h1>two</h1>');
    const second = await cli(['scp', '-r', '--delta', tree, `legacy1:${remote}`]);
    expect(second.stderr).toMatch(/1 file\(s\) copied, 1 unchanged/);
    expect(fs.readFileSync(path.join(remote, 'site', 'index.html'), 'utf8')).toBe('<h1>two</h1>');
    const back = path.join(work, 'back');
    const down = await cli(['scp', '-r', '-d', '-q', `legacy1:${remote}/site`, back]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).toBe('');
    expect(fs.readFileSync(path.join(back, 'css', 'a.css'), 'utf8')).toBe('body{}');
    fs.rmSync(remote, { recursive: true, force: true });
  });

  it('a Docker Machine store that is not one: one line', async () => {
    const r = await cli(['import', '--from', work]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no Docker Machine store at .* \(no machines\/ directory\)/);
    const missing = await cli(['import', 'nosuch']);
    expect(missing.stderr).toMatch(/has no machine "nosuch"/);
  });
});

