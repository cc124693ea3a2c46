/**
 * Docker Machine 0.16's output shapes, so scripts written against `docker-machine` keep
 * working: its state names, `inspect`'s host JSON (libmachine's Host with ConfigVersion 3)
 * and `ls`'s HostListItem fields for `--format`.
 */
import path from 'node:path';
import type { MachineStatus } from '../machine/status.js';
import type { MachineRecord } from '../store/machine-record.js';
import type { Store } from '../store/store.js';
import { goMap } from './go-template.js';

/** libmachine's state strings: Running, Stopped, Paused, Starting, Stopping, Error, Timeout. */
export function dockerMachineState(state: string): string {
  const names: Record<string, string> = {
    running: 'Running',
    stopped: 'Stopped',
    paused: 'Paused',
    starting: 'Starting',
    stopping: 'Stopping',
    error: 'Error',
    timeout: 'Timeout',
    'not-found': 'Error',
    creating: 'Creating',
    unknown: 'Unknown',
  };
  return names[state] ?? state.replace(/(^|-)(\w)/g, (_m, _d: string, c: string) => c.toUpperCase());
}

function keyValuePairs(list: string[]): string[] {
  return list.filter((v) => v.includes('='));
}

/** `docker-machine inspect NAME`: libmachine's Host, from a tmachine record. */
export function dockerMachineHost(store: Store, record: MachineRecord): Record<string, unknown> {
  const machineDir = store.machineDir(record.name);
  const state = record.driver.state;
  const driverSpecific: Record<string, unknown> = {};
  // Cloud and VM identity under Docker Machine's field names, where the driver kept them.
  for (const [key, field] of [
    ['instanceId', 'InstanceId'],
    ['region', 'Region'],
    ['zone', 'Zone'],
    ['project', 'Project'],
    ['vmName', 'VMName'],
    ['containerId', 'ContainerId'],
  ] as const) {
    if (typeof state[key] === 'string') driverSpecific[field] = state[key];
  }
  if (record.driver.name === 'generic') {
    driverSpecific['EnginePort'] = record.engine.port;
    driverSpecific['SSHKey'] = record.ssh.keyPath.startsWith('/') ? record.ssh.keyPath : '';
  }
  if (record.addresses.private) driverSpecific['PrivateIPAddress'] = record.addresses.private;
  return {
    ConfigVersion: 3,
    Driver: {
      IPAddress: record.addresses.public,
      MachineName: record.name,
      SSHUser: record.ssh.user,
      SSHPort: record.ssh.port,
      SSHKeyPath: store.machineFile(record.name, record.ssh.keyPath),
      StorePath: store.root,
      SwarmMaster: false,
      SwarmHost: '',
      SwarmDiscovery: '',
      ...driverSpecific,
    },
    DriverName: record.driver.name,
    HostOptions: {
      Driver: '',
      Memory: 0,
      Disk: 0,
      EngineOptions: {
        ArbitraryFlags: record.engine.opts,
        Dns: null,
        GraphDir: '',
        Env: record.engine.env,
        Ipv6: false,
        InsecureRegistry: record.engine.insecureRegistries,
        Labels: keyValuePairs(record.engine.labels),
        LogLevel: '',
        StorageDriver: record.engine.storageDriver ?? '',
        SelinuxEnabled: false,
        TlsVerify: true,
        RegistryMirror: record.engine.registryMirrors,
        InstallURL: record.engine.installUrl ?? 'https://get.docker.com',
      },
      SwarmOptions: {
        IsSwarm: Boolean(record.swarm?.role),
        Address: '',
        Discovery: '',
        Agent: false,
        Master: record.swarm?.role === 'manager',
        Host: '',
        Image: '',
        Strategy: '',
        Heartbeat: 0,
        Overcommit: 0,
        ArbitraryFlags: [],
        ArbitraryJoinFlags: [],
        Env: null,
        IsExperimental: false,
      },
      AuthOptions: {
        CertDir: store.certsDir,
        // The CA and client certificate this machine's engine trusts: the copies in its directory
        // (the same files as DOCKER_CERT_PATH; for an imported machine, its own).
        CaCertPath: path.join(machineDir, 'ca.pem'),
        CaPrivateKeyPath: path.join(store.certsDir, 'ca-key.pem'),
        CaCertRemotePath: '',
        ServerCertPath: path.join(machineDir, 'server.pem'),
        ServerKeyPath: path.join(machineDir, 'server-key.pem'),
        ClientKeyPath: path.join(machineDir, 'key.pem'),
        ServerCertRemotePath: '',
        ServerKeyRemotePath: '',
        ClientCertPath: path.join(machineDir, 'cert.pem'),
        ServerCertSANs: [],
        StorePath: machineDir,
      },
    },
    Name: record.name,
  };
}

/** Docker Machine's inspect indents with four spaces. */
export function dockerMachineJson(value: unknown): string {
  return JSON.stringify(value, null, 4);
}

/** `ls`'s DOCKER: "v20.10.24" as Docker Machine printed it, "Unknown" when the engine did not answer. */
export function dockerMachineVersion(engineVersion: string): string {
  return engineVersion ? `v${engineVersion}` : 'Unknown';
}

/**
 * A row of `ls` for `--format`: Docker Machine's HostListItem fields, State and DockerVersion
 * spelled as Docker Machine printed them ("Running", "v20.10.24"); `ls --json` keeps
 * tmachine's own spelling ("running", "20.10.24").
 */
export function lsItem(status: MachineStatus, record: MachineRecord | undefined): Record<string, unknown> {
  return {
    Name: status.name,
    Active: status.active ? '*' : '-',
    ActiveHost: status.active,
    ActiveSwarm: false,
    DriverName: status.driver,
    State: dockerMachineState(status.state),
    URL: status.url,
    Swarm: status.swarm,
    SwarmOptions: null,
    EngineOptions: record
      ? { Labels: keyValuePairs(record.engine.labels), InsecureRegistry: record.engine.insecureRegistries, RegistryMirror: record.engine.registryMirrors, ArbitraryFlags: record.engine.opts, Env: record.engine.env }
      : null,
    DockerVersion: dockerMachineVersion(status.engineVersion),
    Error: status.error,
    ResponseTime: 0,
    Labels: goMap(Object.fromEntries((record?.engine.labels ?? []).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))),
  };
}
