/**
 * /etc/docker/daemon.json (SPEC §4): the engine listens on the local socket and on TLS with
 * client verification, never on 2375. The unit files start dockerd without -H, so the hosts
 * here are the only ones (dockerd refuses a setting given both as a flag and in this file).
 */
import { TmachineError } from '../src/errors.js';
import type { EngineOptions } from '../src/store/machine-record.js';

export const DOCKER_TLS_DIR = '/etc/docker/tmachine';
export const DAEMON_JSON_PATH = '/etc/docker/daemon.json';
export const DEFAULT_ENGINE_PORT = 2376;
/** The plain-HTTP engine port; listening there hands root to anyone who can connect. */
const INSECURE_PORT = 2375;

export interface EngineTlsPaths {
  caPath: string;
  certPath: string;
  keyPath: string;
}

export const DEFAULT_TLS_PATHS: EngineTlsPaths = {
  caPath: `${DOCKER_TLS_DIR}/ca.pem`,
  certPath: `${DOCKER_TLS_DIR}/server-cert.pem`,
  keyPath: `${DOCKER_TLS_DIR}/server-key.pem`,
};

export type DaemonValue = string | number | boolean | DaemonValue[] | { [key: string]: DaemonValue };
export type DaemonConfig = { [key: string]: DaemonValue };

/**
 * dockerd's flag names (what Docker Machine users pass to --engine-opt) for options whose
 * daemon.json key differs: the plural list keys, and log-opt, which is a map there.
 */
const FLAG_TO_KEY: Record<string, string> = {
  'dns-opt': 'dns-opts',
  'exec-opt': 'exec-opts',
  'storage-opt': 'storage-opts',
  'log-opt': 'log-opts',
  label: 'labels',
  'insecure-registry': 'insecure-registries',
  'registry-mirror': 'registry-mirrors',
  'authorization-plugin': 'authorization-plugins',
  'allow-nondistributable-artifacts': 'allow-nondistributable-artifacts',
  'node-generic-resource': 'node-generic-resources',
  host: 'hosts',
};

/** daemon.json keys that are lists even with one value (dockerd rejects a bare string there). */
const LIST_KEYS = new Set([
  'dns', 'dns-opts', 'dns-search', 'exec-opts', 'storage-opts', 'labels', 'insecure-registries', 'registry-mirrors',
  'authorization-plugins', 'allow-nondistributable-artifacts', 'node-generic-resources', 'hosts',
]);

/** daemon.json keys that are string maps, given as `--engine-opt log-opt=max-size=10m`. */
const MAP_KEYS = new Set(['log-opts']);

/** Keys tmachine owns: changing them would switch TLS off or point it at other files. */
const OWNED_KEYS = new Set(['tls', 'tlsverify', 'tlscacert', 'tlscert', 'tlskey']);

function engineMajor(version: string | undefined): number {
  const major = Number(/^v?(\d+)\./.exec(version ?? '')?.[1]);
  return Number.isFinite(major) ? major : 0;
}

/** Builds the daemon.json object. Throws a TmachineError for anything that would weaken TLS. */
export function buildDaemonConfig(engine: EngineOptions, tls: EngineTlsPaths = DEFAULT_TLS_PATHS): DaemonConfig {
  const port = engine.port ?? DEFAULT_ENGINE_PORT;
  if (port === INSECURE_PORT) refuseInsecurePort(`--engine-port ${port}`);
  const config: DaemonConfig = {
    hosts: ['unix:///var/run/docker.sock', `tcp://0.0.0.0:${port}`],
    tls: true,
    tlsverify: true,
    tlscacert: tls.caPath,
    tlscert: tls.certPath,
    tlskey: tls.keyPath,
  };
  // Engines 29 and newer refuse swarm mode with the nftables firewall backend (SPEC §4): swarm
  // nodes get iptables pinned. Older engines do not know the key and would refuse to start.
  if (engineMajor(engine.version) >= 29 && !engine.opts.some((o) => o.startsWith('firewall-backend='))) config['firewall-backend'] = 'iptables';
  const addList = (key: string, values: string[]) => {
    if (values.length === 0) return;
    const current = config[key];
    const list = Array.isArray(current) ? current : current === undefined ? [] : [current];
    for (const value of values) if (!list.includes(value)) list.push(value);
    config[key] = list;
  };

  addList('labels', engine.labels.map((label) => checkedLabel(label)));
  addList('registry-mirrors', engine.registryMirrors);
  addList('insecure-registries', engine.insecureRegistries);
  if (engine.storageDriver) config['storage-driver'] = engine.storageDriver;

  for (const opt of engine.opts) {
    const split = splitOption(opt);
    const key = FLAG_TO_KEY[split.key] ?? split.key;
    const value = split.value;
    if (OWNED_KEYS.has(key)) {
      throw new TmachineError(`--engine-opt ${opt}: "${key}" is managed by tmachine`, {
        hint: 'the engine API always uses TLS with client certificates (SPEC §7); leave the TLS settings to tmachine',
      });
    }
    if (MAP_KEYS.has(key)) {
      const entry = splitOption(value, opt);
      const map = config[key];
      const target = map !== undefined && typeof map === 'object' && !Array.isArray(map) ? map : {};
      // dockerd wants every log-opt value as a string ("max-file": "3").
      target[entry.key] = entry.value;
      config[key] = target;
    } else if (LIST_KEYS.has(key)) {
      addList(key, [value]);
    } else if (key === 'storage-driver' && config[key] !== undefined) {
      throw new TmachineError(`storage-driver given twice (--engine-storage-driver and --engine-opt ${opt})`, {
        hint: 'keep one of them',
      });
    } else {
      // A repeated option becomes a list, in the order given.
      const current = config[key];
      config[key] = current === undefined ? typed(value) : [...(Array.isArray(current) ? current : [current]), typed(value)];
    }
  }

  assertSecure(config, port);
  return config;
}

/** The file's bytes: keys sorted at every level, so the same input always gives the same bytes. */
export function renderDaemonJson(config: DaemonConfig): string {
  return JSON.stringify(sortKeys(config), null, 2) + '\n';
}

function sortKeys(value: DaemonValue): DaemonValue {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value === 'object') {
    const sorted: { [key: string]: DaemonValue } = {};
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeys(value[key]!);
    return sorted;
  }
  return value;
}

function splitOption(opt: string, whole: string = opt): { key: string; value: string } {
  const eq = opt.indexOf('=');
  const rawKey = (eq < 0 ? opt : opt.slice(0, eq)).trim().replace(/^--?/, '');
  if (eq <= 0 || rawKey === '') {
    throw new TmachineError(`--engine-opt ${whole}: expected key=value`, { hint: 'for example --engine-opt log-level=warn' });
  }
  return { key: rawKey, value: opt.slice(eq + 1) };
}

function checkedLabel(label: string): string {
  if (!/^[^=\s]+=.*$/.test(label)) {
    throw new TmachineError(`--engine-label ${label}: expected key=value`, { hint: 'for example --engine-label zone=a' });
  }
  return label;
}

function typed(value: string): DaemonValue {
  if (value === 'true') return true;
  if (value === 'false') return false;
  // Plain decimal numbers only: "0755" or "1e3" are more likely meant as strings.
  if (/^-?(0|[1-9]\d{0,14})(\.\d+)?$/.test(value)) return Number(value);
  return value;
}

/** The last word on what the engine may listen on, whatever the options said. */
function assertSecure(config: DaemonConfig, port: number): void {
  if (config['tls'] !== true || config['tlsverify'] !== true) {
    throw new TmachineError('refusing an engine configuration without tlsverify', {
      hint: 'the engine API is reachable only with TLS client certificates (SPEC §7)',
    });
  }
  const hosts = config['hosts'];
  for (const host of Array.isArray(hosts) ? hosts : [hosts]) {
    if (typeof host !== 'string') continue;
    const tcp = /^(?:tcp|http):\/\/(?:\[[^\]]*\]|[^:/]*)(?::(\d+))?/.exec(host);
    if (!tcp) continue;
    // dockerd's default for a tcp host without a port is 2375 (2376 with TLS; assume the worse).
    const listenPort = tcp[1] === undefined ? INSECURE_PORT : Number(tcp[1]);
    if (listenPort === INSECURE_PORT) refuseInsecurePort(host);
    if (listenPort !== port) {
      throw new TmachineError(`refusing engine host ${host}: tmachine serves the engine API on port ${port} only`, {
        hint: 'use --engine-port to move the TLS port',
      });
    }
  }
}

function refuseInsecurePort(what: string): never {
  throw new TmachineError(`refusing to let the engine listen on port ${INSECURE_PORT} (${what})`, {
    hint: `port ${INSECURE_PORT} is Docker's unencrypted API; tmachine serves the engine over TLS on 2376`,
  });
}
