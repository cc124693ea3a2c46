/**
 * `tmachine import`: machines of a Docker Machine store (0.16's layout) become tmachine
 * machines. The Docker Machine store is only read, never written: keys and certificates
 * are copied into tmachine's store.
 *
 *   <dm>/machines/NAME/config.json   libmachine's Host (ConfigVersion 3)
 *   <dm>/machines/NAME/id_rsa        the SSH key Docker Machine made or copied
 *   <dm>/machines/NAME/{ca,cert,key,server,server-key}.pem
 *   <dm>/certs/{ca,ca-key,cert,key}.pem
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseOptions, resolveRawOptions, storableOptions } from '../../drivers/kit/index.js';
import { builtInDriverNames, loadDriverDefinition } from '../../drivers/registry.js';
import { TmachineError } from '../errors.js';
import { STORE_SCHEMA_VERSION, type MachineRecord } from '../store/machine-record.js';
import { validateMachineName, type Store } from '../store/store.js';

/** The parts of libmachine's Host that tmachine reads; everything else is ignored. */
const dmHostSchema = z.object({
  ConfigVersion: z.number().optional(),
  Driver: z
    .object({
      IPAddress: z.string().default(''),
      MachineName: z.string().optional(),
      SSHUser: z.string().default('root'),
      SSHPort: z.number().int().default(22),
      SSHKeyPath: z.string().default(''),
      StorePath: z.string().optional(),
    })
    .passthrough(),
  DriverName: z.string(),
  HostOptions: z
    .object({
      EngineOptions: z
        .object({
          ArbitraryFlags: z.array(z.string()).nullish(),
          Env: z.array(z.string()).nullish(),
          InsecureRegistry: z.array(z.string()).nullish(),
          Labels: z.array(z.string()).nullish(),
          RegistryMirror: z.array(z.string()).nullish(),
          StorageDriver: z.string().nullish(),
          InstallURL: z.string().nullish(),
        })
        .passthrough()
        .optional(),
      AuthOptions: z
        .object({
          CaCertPath: z.string().optional(),
          ClientCertPath: z.string().optional(),
          ClientKeyPath: z.string().optional(),
          ServerCertPath: z.string().optional(),
          ServerKeyPath: z.string().optional(),
        })
        .passthrough()
        .optional(),
    })
    .passthrough()
    .optional(),
  Name: z.string(),
});
type DmHost = z.infer<typeof dmHostSchema>;

/** Docker Machine's driver names and tmachine's. */
const DRIVER_NAMES: Record<string, string> = { generic: 'generic', amazonec2: 'ec2', google: 'gce', virtualbox: 'virtualbox' };

export function dockerMachineStorePath(from?: string): string {
  return path.resolve(from ?? process.env['MACHINE_STORAGE_PATH'] ?? path.join(os.homedir(), '.docker', 'machine'));
}

export interface ImportPlanEntry {
  name: string;
  /** Set when the machine cannot be imported: the one line saying why. */
  skip?: string;
  record?: MachineRecord;
  /** What stays behind when the imported machine is removed, said once at import. */
  note?: string;
  /** Files to copy: source in the DM store -> file name in the tmachine machine dir. */
  files?: Array<{ from: string; to: string }>;
}

async function exists(file: string): Promise<boolean> {
  return fs
    .access(file)
    .then(() => true)
    .catch(() => false);
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

type ResourceEntry = MachineRecord['driver']['resources'][number];

interface DriverIdentity {
  options: Record<string, unknown>;
  state: Record<string, unknown>;
  /** The undo log: what `rm` of the imported machine removes (through the driver). */
  resources: ResourceEntry[];
  /** Docker Machine reached VirtualBox VMs through a NAT port forward on 127.0.0.1. */
  ssh?: { host: string };
  /** Said once at import: what stays behind when the machine is removed. */
  note?: string;
}

/**
 * The identity a cloud or VM machine keeps, in the state and undo-log shapes of tmachine's
 * ec2/gce/virtualbox drivers (instance id and region, project and zone, VM name), so
 * `stop`, `start` and `rm` go through the right driver to the same instance.
 */
function driverIdentity(dmDriver: string, name: string, driver: Record<string, unknown>): DriverIdentity {
  if (dmDriver === 'amazonec2') {
    const region = str(driver['Region']);
    const letter = str(driver['Zone']);
    const zone = letter && region && /^[a-z]$/.test(letter) ? `${region}${letter}` : letter;
    const instanceId = str(driver['InstanceId']);
    return {
      options: {
        ...(region ? { 'ec2-region': region } : {}),
        ...(zone ? { 'ec2-zone': zone } : {}),
        ...(str(driver['InstanceType']) ? { 'ec2-instance-type': [driver['InstanceType']] } : {}),
        // An EC2-compatible endpoint Docker Machine was pointed at (--amazonec2-endpoint).
        ...(str(driver['Endpoint']) ? { 'ec2-endpoint': driver['Endpoint'] } : {}),
        ...(str(driver['SSHUser']) ? { 'ec2-ssh-user': driver['SSHUser'] } : {}),
      },
      state: {
        ...(instanceId ? { instanceId } : {}),
        ...(region ? { region } : {}),
        ...(zone ? { zone } : {}),
        ...(str(driver['InstanceType']) ? { instanceType: driver['InstanceType'] } : {}),
        ...(str(driver['SSHUser']) ? { sshUser: driver['SSHUser'] } : {}),
        ...(str(driver['IPAddress']) ? { publicIp: driver['IPAddress'] } : {}),
        ...(str(driver['PrivateIPAddress']) ? { privateIp: driver['PrivateIPAddress'] } : {}),
        ...(str(driver['VpcId']) ? { vpcId: driver['VpcId'] } : {}),
        ...(str(driver['SubnetId']) ? { subnetId: driver['SubnetId'] } : {}),
      },
      resources: instanceId ? [{ kind: 'instance', id: instanceId, label: `instance ${instanceId}`, ...(region ? { details: { region } } : {}) }] : [],
      note: `its key pair ${str(driver['KeyName']) ?? name} and security group stay when it is removed (Docker Machine made them; other machines may share the group)`,
    };
  }
  if (dmDriver === 'google') {
    const project = str(driver['Project']);
    const zone = str(driver['Zone']);
    const instance = str(driver['MachineName']) ?? name;
    return {
      options: { ...(project ? { 'gce-project': project } : {}), ...(zone ? { 'gce-zone': zone } : {}), ...(str(driver['MachineType']) ? { 'gce-machine-type': driver['MachineType'] } : {}) },
      state: { instance, ...(project ? { project } : {}), ...(zone ? { zone } : {}), ...(str(driver['IPAddress']) ? { publicIp: driver['IPAddress'] } : {}) },
      resources: [{ kind: 'instance', id: instance, label: `instance ${instance}`, details: { ...(project ? { project } : {}), ...(zone ? { zone } : {}) } }],
    };
  }
  if (dmDriver === 'virtualbox') {
    const vmName = str(driver['MachineName']) ?? name;
    return {
      options: { ...(typeof driver['Memory'] === 'number' ? { 'virtualbox-memory': driver['Memory'] } : {}), ...(typeof driver['CPU'] === 'number' ? { 'virtualbox-cpu-count': driver['CPU'] } : {}) },
      state: {
        vmName,
        ...(typeof driver['SSHPort'] === 'number' ? { sshPort: driver['SSHPort'] } : {}),
        ...(str(driver['IPAddress']) ? { hostOnlyAddress: driver['IPAddress'] } : {}),
      },
      // VBoxManage takes the VM name where it takes its UUID; the VM's disks go with it.
      resources: [{ kind: 'vm', id: vmName, label: `VirtualBox VM ${vmName}`, details: { name: vmName } }],
      ssh: { host: '127.0.0.1' },
    };
  }
  return { options: {}, state: {}, resources: [] };
}

/** What importing each machine means, without changing anything. */
export async function planImport(store: Store, dmRoot: string, names: string[], availableDrivers: string[] = builtInDriverNames()): Promise<ImportPlanEntry[]> {
  const machinesDir = path.join(dmRoot, 'machines');
  if (!(await exists(machinesDir))) {
    throw new TmachineError(`no Docker Machine store at ${dmRoot} (no machines/ directory)`, { hint: 'pass --from DIR or set MACHINE_STORAGE_PATH' });
  }
  const all = (await fs.readdir(machinesDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  for (const name of names) {
    if (!all.includes(name)) throw new TmachineError(`Docker Machine store ${dmRoot} has no machine "${name}"`, { hint: `machines there: ${all.join(', ') || 'none'}` });
  }
  const plan: ImportPlanEntry[] = [];
  for (const name of names.length > 0 ? names : all) {
    const dir = path.join(machinesDir, name);
    let host: DmHost;
    try {
      const parsed = dmHostSchema.safeParse(JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        plan.push({ name, skip: `${path.join(dir, 'config.json')} is not a Docker Machine host at ${issue?.path.join('.') || '(root)'}: ${issue?.message}` });
        continue;
      }
      host = parsed.data;
    } catch (error) {
      plan.push({ name, skip: `cannot read ${path.join(dir, 'config.json')}: ${error instanceof Error ? error.message : String(error)}` });
      continue;
    }
    try {
      validateMachineName(name);
    } catch (error) {
      plan.push({ name, skip: (error as Error).message });
      continue;
    }
    if (await store.exists(name)) {
      plan.push({ name, skip: `a tmachine machine named "${name}" exists already` });
      continue;
    }
    const driver = DRIVER_NAMES[host.DriverName];
    if (!driver) {
      plan.push({ name, skip: `driver "${host.DriverName}" has no tmachine equivalent (tmachine has: ${availableDrivers.join(', ')})` });
      continue;
    }
    if (!availableDrivers.includes(driver)) {
      plan.push({ name, skip: `Docker Machine driver "${host.DriverName}" is tmachine's "${driver}" driver, which this tmachine does not have yet` });
      continue;
    }
    const d = host.Driver;
    if (!d.IPAddress) {
      plan.push({ name, skip: 'the machine has no IP address in its config.json (start it with docker-machine once, or create it again)' });
      continue;
    }
    // The key: Docker Machine's copy in the machine dir, else the path its config names.
    const keyFrom = (await exists(path.join(dir, 'id_rsa'))) ? path.join(dir, 'id_rsa') : d.SSHKeyPath;
    if (!keyFrom || !(await exists(keyFrom))) {
      plan.push({ name, skip: `no SSH key: neither ${path.join(dir, 'id_rsa')} nor ${d.SSHKeyPath || '(SSHKeyPath empty)'} exists` });
      continue;
    }
    const files: Array<{ from: string; to: string }> = [{ from: keyFrom, to: 'id_rsa' }];
    const auth = host.HostOptions?.AuthOptions ?? {};
    const tlsFiles: Array<[string, string | undefined]> = [
      ['ca.pem', auth.CaCertPath],
      ['cert.pem', auth.ClientCertPath],
      ['key.pem', auth.ClientKeyPath],
      ['server.pem', auth.ServerCertPath],
      ['server-key.pem', auth.ServerKeyPath],
    ];
    for (const [file, fallback] of tlsFiles) {
      const inDir = path.join(dir, file);
      const from = (await exists(inDir)) ? inDir : fallback && (await exists(fallback)) ? fallback : undefined;
      if (from) files.push({ from, to: file });
    }
    const engine = host.HostOptions?.EngineOptions ?? {};
    const identity = driverIdentity(host.DriverName, name, d);
    const enginePort = typeof d['EnginePort'] === 'number' ? (d['EnginePort'] as number) : 2376;
    const genericOptions =
      driver === 'generic'
        ? { 'generic-ip-address': d.IPAddress, 'generic-ssh-user': d.SSHUser, 'generic-ssh-port': d.SSHPort, ...(str(d['SSHKey']) ? { 'generic-ssh-key': d['SSHKey'] } : {}) }
        : {};
    // Stored as create stores them: every flag resolved (defaults included), secrets dropped,
    // and valid for the driver's schema, which every later command parses them with.
    let storedOptions: Record<string, unknown>;
    try {
      const definition = await loadDriverDefinition(driver);
      const raw = resolveRawOptions(definition.flags, { ...genericOptions, ...identity.options });
      parseOptions(definition.optionsSchema, raw, definition.flags);
      storedOptions = storableOptions(definition.flags, raw);
    } catch (error) {
      plan.push({ name, skip: `its settings do not fit tmachine's ${driver} driver: ${error instanceof Error ? error.message : String(error)}` });
      continue;
    }
    plan.push({
      name,
      ...(identity.note ? { note: identity.note } : {}),
      files,
      record: {
        schemaVersion: STORE_SCHEMA_VERSION,
        name,
        createdAt: new Date().toISOString(),
        driver: {
          name: driver,
          options: storedOptions,
          state: { ...identity.state, importedFrom: { dockerMachine: path.join(dir, 'config.json'), driver: host.DriverName } },
          resources: identity.resources,
        },
        ssh: { user: d.SSHUser, host: identity.ssh?.host ?? d.IPAddress, port: d.SSHPort, keyPath: 'id_rsa' },
        addresses: { public: d.IPAddress, ...(str(d['PrivateIPAddress']) ? { private: d['PrivateIPAddress'] as string } : {}) },
        engine: {
          // Docker Machine installed the engine; tmachine verifies it and leaves it be.
          install: 'none',
          opts: (engine.ArbitraryFlags ?? []).map((f) => (f.includes('=') ? f : `${f}=true`)),
          env: engine.Env ?? [],
          labels: engine.Labels ?? [],
          insecureRegistries: engine.InsecureRegistry ?? [],
          registryMirrors: engine.RegistryMirror ?? [],
          ...(engine.StorageDriver ? { storageDriver: engine.StorageDriver } : {}),
          ...(engine.InstallURL ? { installUrl: engine.InstallURL } : {}),
          registryCAs: [],
          port: enginePort,
        },
        provisioned: { at: new Date().toISOString() },
      },
    });
  }
  return plan;
}

/** Writes one planned machine into the store (reserve, then files, then the final record). */
export async function applyImport(store: Store, entry: ImportPlanEntry): Promise<void> {
  if (!entry.record || !entry.files) throw new Error(`nothing to import for ${entry.name}`);
  await store.reserve({ ...entry.record, creating: true });
  try {
    for (const file of entry.files) {
      await store.writeSecretFile(path.join(store.machineDir(entry.name), file.to), await fs.readFile(file.from));
    }
    await store.save(entry.record);
  } catch (error) {
    await store.remove(entry.name);
    throw error;
  }
}
