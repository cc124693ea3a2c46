/** The plan's shape per install mode, and how failures read, against a scripted fake host. */
import { describe, expect, it } from 'vitest';
import { TmachineError } from '../../src/errors.js';
import type { ExecOptions, ExecResult, RemoteHost } from '../../src/ssh/types.js';
import { engineOptionsSchema, type EngineOptions } from '../../src/store/machine-record.js';
import { type ProvisionContext, provisionPlan } from '../../provision/engine-install.js';
import type { HostInfo } from '../../provision/os.js';

type Responder = (command: string, options?: ExecOptions) => Partial<ExecResult> | undefined;

function fakeHost(respond: Responder): RemoteHost & { commands: string[] } {
  const commands: string[] = [];
  const exec = async (command: string, options?: ExecOptions): Promise<ExecResult> => {
    commands.push(command);
    return { code: 0, stdout: '', stderr: '', ...respond(command, options) };
  };
  return {
    label: 'web1',
    commands,
    exec,
    run: async (command) => (await exec(command)).stdout,
    upload: async () => undefined,
    writeFile: async () => undefined,
    download: async () => undefined,
    close: () => undefined,
  };
}

const OS: HostInfo = {
  id: 'debian', idLike: [], versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)', family: 'debian', init: 'systemd',
  arch: 'x86_64', user: 'admin', home: '/home/admin', root: false,
};

function context(host: RemoteHost, engine: Partial<EngineOptions>, extra: Partial<ProvisionContext> = {}): ProvisionContext {
  return {
    host,
    os: OS,
    machineName: 'web1',
    sshUser: 'admin',
    engine: engineOptionsSchema.parse({ install: 'bundle', ...engine }),
    certs: { caPem: 'CA', serverCertPem: 'CERT', serverKeyPem: 'KEY' },
    ...extra,
  };
}

describe('provisionPlan', () => {
  const host = fakeHost(() => undefined);
  const tail = ['docker-group', 'firewall', 'engine-units', 'engine-tls', 'daemon-config', 'engine-start', 'engine-ready'];

  it('has the steps of each install mode', () => {
    const ids = (engine: Partial<EngineOptions>, extra?: Partial<ProvisionContext>) => provisionPlan(context(host, engine, extra)).map((s) => s.id);
    expect(ids({ install: 'bundle' })).toEqual(['engine-listeners', 'engine-prerequisites', 'engine-bundle-upload', 'engine-binaries', ...tail]);
    expect(ids({ install: 'script' })).toEqual(['engine-listeners', 'engine-script', ...tail]);
    expect(ids({ install: 'package' })).toEqual(['engine-listeners', 'engine-package', ...tail]);
    expect(ids({ install: 'none' })).toEqual(['engine-listeners', 'engine-verify', ...tail]);
    expect(ids({ install: 'package' }, { registryCas: [{ registry: 'reg.example.org:5000', caPem: 'X' }] })).toContain('registry-cas');
  });

  it('runs every privileged command through sudo -n when not root', async () => {
    const h = fakeHost(() => ({ code: 1 }));
    for (const step of provisionPlan(context(h, { install: 'package' }))) await step.needsRun(context(h, { install: 'package' })).catch(() => undefined);
    const privileged = h.commands.filter((c) => !c.startsWith('mkdir -p -m 700'));
    expect(privileged.length).toBeGreaterThan(5);
    for (const command of privileged) expect(command.startsWith('sudo -n sh -c ')).toBe(true);
  });
});

describe('failures', () => {
  it('say which step failed on which host, and why', async () => {
    const h = fakeHost((command) =>
      command.includes('apt-get install') ? { code: 100, stderr: 'Reading package lists...\nE: Unable to locate package docker.io\n' } : { code: 1 },
    );
    const ctx = context(h, { install: 'package' });
    const step = provisionPlan(ctx).find((s) => s.id === 'engine-package')!;
    expect(await step.needsRun(ctx)).toBe(true);
    const error = await step.run(ctx, () => undefined).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(TmachineError);
    expect((error as TmachineError).message).toBe(
      `step "install the distribution's engine package" failed on web1: installing docker.io failed: E: Unable to locate package docker.io`,
    );
  });

  it('--engine-install none fails clearly when no engine is there', async () => {
    const h = fakeHost(() => ({ code: 127, stderr: 'sh: 1: dockerd: not found' }));
    const ctx = context(h, { install: 'none' });
    const step = provisionPlan(ctx).find((s) => s.id === 'engine-verify')!;
    expect(await step.needsRun(ctx)).toBe(true);
    await expect(step.run(ctx, () => undefined)).rejects.toThrow(/failed on web1: no Docker engine on web1 \(dockerd not found\)/);
  });

  it('--engine-install none is satisfied by an engine of the wanted version', async () => {
    const h = fakeHost((command) => (command.includes('dockerd --version') || command.includes('command -v dockerd') ? { code: 0, stdout: 'Docker version 27.3.1, build ce12230\n' } : undefined));
    const ctx = context(h, { install: 'none', version: '27.3.1' });
    expect(await provisionPlan(ctx).find((s) => s.id === 'engine-verify')!.needsRun(ctx)).toBe(false);
  });

  it('refuses a bundle install without a bundle', async () => {
    const ctx = context(fakeHost(() => undefined), { install: 'bundle' });
    const step = provisionPlan(ctx).find((s) => s.id === 'engine-bundle-upload')!;
    await expect(step.needsRun(ctx)).rejects.toThrow(/needs a bundle/);
  });

  it('refuses a daemon.json that would listen on 2375 before touching the host', async () => {
    const h = fakeHost(() => undefined);
    const ctx = context(h, { install: 'none', port: 2375 });
    const step = provisionPlan(ctx).find((s) => s.id === 'daemon-config')!;
    await expect(step.needsRun(ctx)).rejects.toThrow(/failed on web1: refusing to let the engine listen on port 2375/);
    expect(h.commands).toEqual([]);
  });
});
