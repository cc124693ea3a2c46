/**
 * The virtualbox driver: a VirtualBox 7 VM cloned from a cloud image, configured at first
 * boot by cloud-init from a NoCloud seed ISO that tmachine writes. NIC 1 is NAT with a port
 * forward 127.0.0.1:<port> → 22 for SSH; NIC 2 is host-only with a fixed address, which is
 * the address the swarm advertises and the engine certificate carries.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import {
  debug,
  DriverError,
  isDriverError,
  waitFor,
  waitForSsh,
  type Driver,
  type DriverContext,
  type DriverImplementation,
  type HostAddresses,
  type HostState,
  type ResourceEntry,
  type SshTarget,
} from '../kit/index.js';
import type { VirtualBoxOptions, VirtualBoxState } from './definition.js';
import { ensureBaseDisk } from './image.js';
import { candidateAddresses, checkAllowedCidr, parseHostOnlyCidr, type Cidr } from './network.js';
import { seedFiles, seedImage, SSH_USER } from './seed.js';
import { findVBoxManage, parseHostOnlyInterfaces, parseVmList, VBoxManage, VBoxManageError } from './vboxmanage.js';

type Context = DriverContext<VirtualBoxOptions, VirtualBoxState>;

const SSH_WAIT_MS = 240_000;
const ADDRESS_KEY = 'tmachine/HostOnlyAddress';
/** Global extradata naming the host-only interfaces tmachine created (and may remove). */
const CREATED_KEY = 'tmachine/HostOnlyCreated';
export const RESOURCE = { vm: 'vm', disk: 'disk', seed: 'seed', hostOnly: 'hostonly-interface' } as const;

export const implementation: DriverImplementation<VirtualBoxOptions, VirtualBoxState> = {
  open: (context) => new VirtualBoxDriver(context),
};

class VirtualBoxDriver implements Driver {
  private vboxManage: VBoxManage | undefined;

  constructor(private readonly context: Context) {}

  private get options(): VirtualBoxOptions {
    return this.context.options;
  }

  private get saved(): VirtualBoxState {
    return this.context.state;
  }

  private vbox(): VBoxManage {
    if (this.vboxManage) return this.vboxManage;
    let executable: string;
    try {
      executable = findVBoxManage(this.options['virtualbox-vboxmanage']);
    } catch (error) {
      if (!this.saved.vboxManage || !fs.existsSync(this.saved.vboxManage)) throw error;
      executable = this.saved.vboxManage;
    }
    this.vboxManage = new VBoxManage(executable);
    return this.vboxManage;
  }

  /** The VM's UUID, or its name for a VM tmachine did not make (imported from Docker Machine): VBoxManage takes either. */
  private vm(): string {
    const vm = this.saved.uuid ?? this.saved.vmName;
    if (!vm) {
      throw new DriverError('not-found', `machine "${this.context.machineName}" has no VirtualBox VM recorded`, { hint: `remove it with \`tmachine rm -f ${this.context.machineName}\`` });
    }
    return vm;
  }

  async preCreateCheck(): Promise<void> {
    const cidr = parseHostOnlyCidr(this.options['virtualbox-hostonly-cidr']);
    checkAllowedCidr(cidr, this.options['virtualbox-hostonly-cidr']);
    const share = this.shareFolder();
    if (share && !fs.existsSync(share.dir)) {
      throw new DriverError('invalid-input', `--virtualbox-share-folder: ${share.dir} does not exist`, { hint: 'give an existing directory as DIR:NAME' });
    }

    const vbox = this.vbox();
    this.saved.vboxManage = vbox.executable;
    const { stdout } = await vbox.run(['--version'], { signal: this.context.signal, timeoutMs: 30_000 });
    const version = stdout.trim().split(/\r?\n/).pop() ?? '';
    const major = Number(/^(\d+)\./.exec(version)?.[1] ?? NaN);
    if (!(major >= 7)) {
      throw new DriverError('unsupported', `VirtualBox ${version || '(unknown version)'} is too old: tmachine needs VirtualBox 7.0 or newer`, {
        hint: 'upgrade VirtualBox to 7.0 or newer',
      });
    }
    if (!this.options['virtualbox-no-vtx-check']) {
      const host = await vbox.run(['list', 'hostinfo'], { signal: this.context.signal, timeoutMs: 30_000 });
      const vtx = /^Processor supports HW virtualization:\s*(\w+)/m.exec(host.stdout)?.[1];
      if (vtx !== 'yes') {
        throw new DriverError('unsupported', 'this computer has no hardware virtualization (VT-x/AMD-V) enabled, which VirtualBox needs for 64-bit guests', {
          hint: 'enable VT-x/AMD-V in the BIOS/UEFI settings, or pass --virtualbox-no-vtx-check to skip this check',
        });
      }
    }
    const vms = parseVmList((await vbox.run(['list', 'vms'], { signal: this.context.signal })).stdout);
    if (vms.some((v) => v.name === this.context.machineName)) {
      throw new DriverError('already-exists', `VirtualBox already has a VM named "${this.context.machineName}"`, {
        hint: 'choose another machine name, or remove that VM in VirtualBox',
      });
    }
    // Download and convert here, before anything is made: a failed download leaves nothing.
    await ensureBaseDisk(vbox, {
      source: this.options['virtualbox-image-url'],
      ...(this.options['virtualbox-image-checksum'] ? { checksum: this.options['virtualbox-image-checksum'] } : {}),
      cacheDir: this.context.cacheDir,
      signal: this.context.signal,
      report: (m) => this.context.report(m),
    });
  }

  async create(): Promise<void> {
    const ctx = this.context;
    const vbox = this.vbox();
    const signal = ctx.signal;
    const name = ctx.machineName;
    const cidr = parseHostOnlyCidr(this.options['virtualbox-hostonly-cidr']);
    const base = await ensureBaseDisk(vbox, {
      source: this.options['virtualbox-image-url'],
      ...(this.options['virtualbox-image-checksum'] ? { checksum: this.options['virtualbox-image-checksum'] } : {}),
      cacheDir: ctx.cacheDir,
      signal,
      report: (m) => ctx.report(m),
    });

    // Interface choice, address choice and VM registration happen under one lock, so
    // machines created at the same time (here or in another tmachine) never share an address.
    let settingsFile = '';
    await this.withHostOnlyLock(async () => {
      const iface = await this.ensureHostOnlyInterface(cidr);
      this.saved.hostOnlyInterface = iface;
      const address = await this.freeAddress(cidr);
      ctx.report(`creating VM ${name}`);
      const created = await vbox.run(['createvm', '--name', name, '--basefolder', ctx.machineDir, '--ostype', 'Debian_64', '--register'], { signal });
      const uuid = /^UUID:\s*([0-9a-fA-F-]{36})/m.exec(created.stdout)?.[1];
      settingsFile = /^Settings file:\s*'(.*)'/m.exec(created.stdout)?.[1] ?? path.join(ctx.machineDir, name, `${name}.vbox`);
      if (!uuid) throw new DriverError('failed', `VBoxManage createvm printed no UUID: ${created.stdout.trim()}`);
      await ctx.undo.record({ kind: RESOURCE.vm, id: uuid, label: `VirtualBox VM ${name}`, details: { name } });
      this.saved.uuid = uuid;
      this.saved.vmName = name;
      this.saved.hostOnlyAddress = address;
      await ctx.saveState();
      await vbox.run(['setextradata', uuid, ADDRESS_KEY, address], { signal });
    });
    const uuid = this.vm();
    const vmDir = path.dirname(settingsFile);

    ctx.report(`cloning the boot disk for ${name}`);
    const diskPath = path.join(vmDir, 'disk.vdi');
    await vbox.run(['clonemedium', 'disk', base.vdiPath, diskPath, '--format', 'VDI'], { signal });
    await ctx.undo.record({ kind: RESOURCE.disk, id: diskPath, label: `disk ${path.basename(diskPath)} of ${name}` });
    // clonemedium registered the cached base too; VirtualBox's media list should not keep
    // a cache file (a clone running in parallel may still hold it: then the next one closes it).
    await vbox.run(['closemedium', 'disk', base.vdiPath], { signal }).catch((e: unknown) => {
      if (!(e instanceof VBoxManageError)) throw e;
    });
    this.saved.diskPath = diskPath;
    await ctx.saveState();
    await this.resizeDisk(diskPath);

    const natMac = randomMac();
    const hostOnlyMac = randomMac();
    const seedPath = path.join(vmDir, 'seed.iso');
    const files = seedFiles({
      instanceId: `tmachine-${uuid}`,
      hostname: name,
      sshPublicKey: ctx.sshPublicKey,
      natMac,
      hostOnlyMac,
      hostOnlyAddress: this.saved.hostOnlyAddress!,
      hostOnlyPrefix: cidr.prefix,
    });
    await ctx.undo.record({ kind: RESOURCE.seed, id: seedPath, label: `cloud-init seed of ${name}` });
    await fsp.writeFile(seedPath, seedImage(files), { mode: 0o600 });
    this.saved.seedPath = seedPath;

    const sshPort = await freeLocalPort();
    this.saved.sshPort = sshPort;
    await ctx.saveState();

    const cpus = this.options['virtualbox-cpu-count'] === -1 ? Math.min(os.cpus().length, 32) : this.options['virtualbox-cpu-count'];
    await vbox.run(
      [
        'modifyvm', uuid,
        '--memory', String(this.options['virtualbox-memory']),
        '--cpus', String(cpus),
        '--firmware', 'bios',
        '--acpi', 'on',
        '--ioapic', 'on',
        '--rtc-use-utc', 'on',
        '--boot1', 'disk',
        '--boot2', 'dvd',
        '--boot3', 'none',
        '--boot4', 'none',
        '--graphicscontroller', 'vmsvga',
        '--vram', '16',
        // The guest's serial console goes to a file: cloud-init prints its progress and the host keys there.
        '--uart1', '0x3F8', '4',
        '--uart-mode1', 'file', path.join(vmDir, 'console.log'),
      ],
      { signal },
    );
    await vbox.run(
      [
        'modifyvm', uuid,
        '--nic1', 'nat',
        '--nic-type1', this.options['virtualbox-nat-nictype'],
        '--mac-address1', natMac,
        '--cable-connected1', 'on',
        '--nat-dns-host-resolver1', this.options['virtualbox-host-dns-resolver'] ? 'on' : 'off',
        '--nat-dns-proxy1', this.options['virtualbox-no-dns-proxy'] ? 'off' : 'on',
        '--nat-pf1', `ssh,tcp,127.0.0.1,${sshPort},,22`,
        '--nic2', 'hostonly',
        '--host-only-adapter2', this.saved.hostOnlyInterface!,
        '--nic-type2', this.options['virtualbox-hostonly-nictype'],
        '--mac-address2', hostOnlyMac,
        '--nic-promisc2', this.options['virtualbox-hostonly-nicpromisc'],
        '--cable-connected2', 'on',
      ],
      { signal },
    );
    await vbox.run(['storagectl', uuid, '--name', 'SATA', '--add', 'sata', '--controller', 'IntelAhci', '--portcount', '2', '--hostiocache', 'on', '--bootable', 'on'], { signal });
    await vbox.run(['storageattach', uuid, '--storagectl', 'SATA', '--port', '0', '--device', '0', '--type', 'hdd', '--medium', diskPath], { signal });
    await vbox.run(['storageattach', uuid, '--storagectl', 'SATA', '--port', '1', '--device', '0', '--type', 'dvddrive', '--medium', seedPath], { signal });
    const share = this.shareFolder();
    if (share) await vbox.run(['sharedfolder', 'add', uuid, '--name', share.name, '--hostpath', share.dir, '--automount'], { signal });

    await this.boot();
  }

  private shareFolder(): { dir: string; name: string } | undefined {
    const given = this.options['virtualbox-share-folder'];
    if (!given || this.options['virtualbox-no-share']) return undefined;
    const at = given.lastIndexOf(':');
    return { dir: path.resolve(given.slice(0, at)), name: given.slice(at + 1) };
  }

  private async resizeDisk(diskPath: string): Promise<void> {
    const wanted = this.options['virtualbox-disk-size'];
    const info = await this.vbox().run(['showmediuminfo', 'disk', diskPath], { signal: this.context.signal });
    const capacity = Number(/^Capacity:\s*(\d+)\s*MBytes/m.exec(info.stdout)?.[1] ?? 0);
    if (capacity >= wanted) {
      if (capacity > wanted) this.context.note(`the boot image is already ${capacity} MB, more than --virtualbox-disk-size; the disk stays that size (VirtualBox cannot shrink disks)`);
      return;
    }
    await this.vbox().run(['modifymedium', 'disk', diskPath, '--resize', String(wanted)], { signal: this.context.signal });
  }

  /** startvm, then wait until sshd answers through the NAT port forward. */
  private async boot(): Promise<void> {
    const uuid = this.vm();
    this.context.report(`starting VM ${this.context.machineName}`);
    await this.vbox().run(['startvm', uuid, '--type', this.options['virtualbox-ui-type']], { signal: this.context.signal });
    this.context.report(`waiting for ${this.context.machineName} to boot (cloud-init) and answer SSH`);
    await waitForSsh(this.context.machineName, '127.0.0.1', this.sshPort(), SSH_WAIT_MS, this.context.signal);
  }

  private sshPort(): number {
    if (!this.saved.sshPort) throw new DriverError('not-found', `machine "${this.context.machineName}" has no SSH port forward recorded`);
    return this.saved.sshPort;
  }

  private async withHostOnlyLock<T>(work: () => Promise<T>): Promise<T> {
    const dir = path.join(this.context.cacheDir, 'virtualbox');
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const release = await lockfile.lock(dir, { lockfilePath: path.join(dir, 'hostonly.lock'), retries: { retries: 300, minTimeout: 100, maxTimeout: 500 }, stale: 60_000 });
    try {
      return await work();
    } finally {
      await release().catch(() => undefined);
    }
  }

  /** The host-only interface with this computer at cidr.hostIp: reused when it exists, else created. */
  private async ensureHostOnlyInterface(cidr: Cidr): Promise<string> {
    const vbox = this.vbox();
    const signal = this.context.signal;
    const existing = parseHostOnlyInterfaces((await vbox.run(['list', 'hostonlyifs'], { signal })).stdout);
    const match = existing.find((i) => i.ip === cidr.hostIp && i.mask === cidr.mask);
    if (match) {
      // An interface tmachine made is recorded by every machine on it, and removed by
      // whichever goes last (removeResource checks, under the lock, that no VM uses it);
      // one the user made is theirs and is never recorded.
      const made = await vbox.run(['getextradata', 'global', `${CREATED_KEY}/${match.name}`], { signal });
      if (/^Value:/m.test(made.stdout)) {
        await this.context.undo.record({ kind: RESOURCE.hostOnly, id: match.name, label: `host-only interface ${match.name}`, details: { cidr: `${cidr.hostIp}/${cidr.prefix}` } });
      }
      return match.name;
    }
    const clash = existing.find((i) => i.ip === cidr.hostIp);
    if (clash) {
      throw new DriverError('invalid-input', `host-only interface ${clash.name} already has ${cidr.hostIp} with netmask ${clash.mask}`, {
        hint: `use --virtualbox-hostonly-cidr ${cidr.hostIp}/<its prefix>, or another address`,
      });
    }
    this.context.report(`creating a host-only network for ${cidr.network}/${cidr.prefix}`);
    const created = await vbox.run(['hostonlyif', 'create'], { signal });
    const name = /Interface '([^']+)' was successfully created/.exec(created.stdout)?.[1];
    if (!name) throw new DriverError('failed', `VBoxManage hostonlyif create printed no interface name: ${created.stdout.trim()}`);
    await this.context.undo.record({ kind: RESOURCE.hostOnly, id: name, label: `host-only interface ${name}`, details: { cidr: `${cidr.hostIp}/${cidr.prefix}` } });
    await vbox.run(['setextradata', 'global', `${CREATED_KEY}/${name}`, 'yes'], { signal });
    await vbox.run(['hostonlyif', 'ipconfig', name, '--ip', cidr.hostIp, '--netmask', cidr.mask], { signal });
    return name;
  }

  /** The first address from .10 that no registered VM holds (VMs keep theirs in extradata). */
  private async freeAddress(cidr: Cidr): Promise<string> {
    const vbox = this.vbox();
    const taken = new Set<string>();
    for (const vm of parseVmList((await vbox.run(['list', 'vms'], { signal: this.context.signal })).stdout)) {
      const value = await vbox.run(['getextradata', vm.uuid, ADDRESS_KEY], { signal: this.context.signal }).catch(() => undefined);
      const m = value ? /^Value:\s*(\S+)/m.exec(value.stdout) : null;
      if (m) taken.add(m[1]!);
    }
    const free = candidateAddresses(cidr).find((ip) => !taken.has(ip));
    if (!free) throw new DriverError('capacity', `the host-only network ${cidr.network}/${cidr.prefix} has no free address left`, { hint: 'use a larger --virtualbox-hostonly-cidr' });
    return free;
  }

  async removeResource(entry: ResourceEntry): Promise<void> {
    const vbox = this.vbox();
    switch (entry.kind) {
      case RESOURCE.vm: {
        const info = await vbox.machineInfo(entry.id);
        if (!info) return;
        const vmState = info.get('VMState') ?? '';
        if (!['poweroff', 'aborted', 'saved'].includes(vmState)) {
          await vbox.run(['controlvm', entry.id, 'poweroff']).catch((e: unknown) => {
            if (!(e instanceof VBoxManageError)) throw e;
          });
          await waitFor(async () => (['poweroff', 'aborted', undefined].includes((await vbox.machineInfo(entry.id))?.get('VMState')) ? true : undefined), {
            what: `VM ${entry.label ?? entry.id} powered off`,
            deadlineMs: 60_000,
          });
        }
        // --delete-all (VirtualBox 7): the disks and the DVD images in the VM folder go with it.
        await vbox.run(['unregistervm', entry.id, '--delete-all']).catch((e: unknown) => {
          if (!isDriverError(e, 'not-found')) throw e;
        });
        const settings = info.get('CfgFile');
        if (settings) {
          await fsp.rm(path.join(path.dirname(settings), 'console.log'), { force: true });
          await fsp.rmdir(path.dirname(settings)).catch(() => undefined);
        }
        return;
      }
      case RESOURCE.disk:
      case RESOURCE.seed: {
        const kind = entry.kind === RESOURCE.disk ? 'disk' : 'dvd';
        if (fs.existsSync(entry.id)) {
          const closed = await vbox.run(['closemedium', kind, entry.id]).then(
            () => true,
            (e: unknown) => {
              if (!(e instanceof VBoxManageError)) throw e;
              // Still attached to the VM: removing the VM (next, it is older) deletes it.
              return !/attached/i.test(e.detail);
            },
          );
          if (!closed) return;
        }
        await fsp.rm(entry.id, { force: true });
        await fsp.rmdir(path.dirname(entry.id)).catch(() => undefined);
        return;
      }
      case RESOURCE.hostOnly: {
        // Every machine on a tmachine-made interface records it; the last one removes it.
        // Under the lock, so two machines removed at once cannot both see the other's VM.
        await this.withHostOnlyLock(async () => {
          for (const vm of parseVmList((await vbox.run(['list', 'vms'])).stdout)) {
            const info = await vbox.machineInfo(vm.uuid);
            if (info && [...info.entries()].some(([k, v]) => /^hostonlyadapter\d+$/.test(k) && v === entry.id)) {
              debug('virtualbox', `kept host-only interface ${entry.id}: VM "${vm.name}" still uses it`);
              return;
            }
          }
          await vbox.run(['hostonlyif', 'remove', entry.id]).catch((e: unknown) => {
            if (!isDriverError(e, 'not-found')) throw e;
          });
          await vbox.run(['setextradata', 'global', `${CREATED_KEY}/${entry.id}`]);
        });
        return;
      }
      default:
        throw new DriverError('invalid-input', `the virtualbox driver does not know resources of kind "${entry.kind}"`);
    }
  }

  async start(): Promise<void> {
    const vmState = await this.vmState();
    if (vmState === 'running') return;
    if (vmState === 'paused') {
      await this.vbox().run(['controlvm', this.vm(), 'resume']);
      return;
    }
    await this.repairHostOnlyInterface();
    await this.boot();
  }

  /** A host-only interface removed behind tmachine's back (or after a reboot of the host) is made again. */
  private async repairHostOnlyInterface(): Promise<void> {
    const vbox = this.vbox();
    const cidr = parseHostOnlyCidr(this.options['virtualbox-hostonly-cidr']);
    const interfaces = parseHostOnlyInterfaces((await vbox.run(['list', 'hostonlyifs'])).stdout);
    if (interfaces.some((i) => i.name === this.saved.hostOnlyInterface && i.ip === cidr.hostIp)) return;
    const name = await this.withHostOnlyLock(() => this.ensureHostOnlyInterface(cidr));
    if (name !== this.saved.hostOnlyInterface) {
      await vbox.run(['modifyvm', this.vm(), '--host-only-adapter2', name]);
      this.saved.hostOnlyInterface = name;
      await this.context.saveState();
    }
  }

  async stop(): Promise<void> {
    const uuid = this.vm();
    if ((await this.vmState()) !== 'running') return;
    const vbox = this.vbox();
    await vbox.run(['controlvm', uuid, 'acpipowerbutton']);
    const timeoutS = this.options['virtualbox-stop-timeout'];
    try {
      await waitFor(async () => ((await this.vmState()) === 'stopped' ? true : undefined), {
        what: `${this.context.machineName} shut down`,
        deadlineMs: timeoutS * 1000,
        intervalMs: 500,
        maxIntervalMs: 2_000,
      });
    } catch (error) {
      if (!isDriverError(error, 'timeout')) throw error;
      await vbox.run(['controlvm', uuid, 'poweroff']);
      this.context.note(`did not shut down within ${timeoutS}s of the ACPI power button; powered it off`);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async kill(): Promise<void> {
    const s = await this.vmState();
    if (s === 'stopped') return;
    await this.vbox().run(['controlvm', this.vm(), 'poweroff']);
  }

  state(): Promise<HostState> {
    return this.vmState();
  }

  private async vmState(): Promise<HostState> {
    const info = await this.vbox().machineInfo(this.vm());
    if (!info) return 'not-found';
    switch (info.get('VMState')) {
      case 'running':
        return 'running';
      case 'paused':
        return 'paused';
      case 'poweroff':
      case 'aborted':
      case 'saved':
        return 'stopped';
      case 'starting':
      case 'restoring':
        return 'starting';
      case 'stopping':
      case 'saving':
        return 'stopping';
      case 'gurumeditation':
        return 'error';
      default:
        return 'unknown';
    }
  }

  async addresses(): Promise<HostAddresses> {
    const address = this.saved.hostOnlyAddress;
    if (!address) throw new DriverError('not-found', `machine "${this.context.machineName}" has no host-only address recorded`);
    // This computer reaches the guest on the host-only network too (engine API); SSH goes
    // through the NAT port forward (sshTarget).
    return { public: address, private: address };
  }

  async sshTarget(): Promise<SshTarget> {
    return { host: '127.0.0.1', port: this.sshPort(), user: SSH_USER };
  }

  /** cloud-init prints the host keys on the serial console, which goes to console.log. */
  async publishedHostKeys(): Promise<string[] | undefined> {
    if (!this.saved.diskPath) return undefined;
    const consoleLog = path.join(path.dirname(this.saved.diskPath), 'console.log');
    if (!fs.existsSync(consoleLog)) return undefined;
    try {
      return await waitFor(
        async () => {
          const text = await fsp.readFile(consoleLog, 'utf8').catch(() => '');
          const keys = hostKeysFromConsole(text);
          return keys.length > 0 ? keys : undefined;
        },
        { what: `host keys of ${this.context.machineName} on its console`, deadlineMs: 60_000, signal: this.context.signal },
      );
    } catch (error) {
      if (isDriverError(error, 'timeout')) return undefined;
      throw error;
    }
  }
}

/** The keys cloud-init writes between "-----BEGIN SSH HOST KEY KEYS-----" and its END line (the last block wins). */
export function hostKeysFromConsole(text: string): string[] {
  const blocks = [...text.matchAll(/-----BEGIN SSH HOST KEY KEYS-----\r?\n([\s\S]*?)-----END SSH HOST KEY KEYS-----/g)];
  const last = blocks.at(-1)?.[1];
  if (!last) return [];
  return last
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => /^(ssh-|ecdsa-)/.test(l));
}

/** VirtualBox's own OUI (08:00:27), as VirtualBox generates them. */
function randomMac(): string {
  return `080027${crypto.randomBytes(3).toString('hex').toUpperCase()}`;
}

/** A port free on 127.0.0.1 now (VirtualBox binds it when the VM starts). */
function freeLocalPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
