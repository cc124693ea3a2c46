import { describe, expect, it } from 'vitest';
import { TmachineError } from '../../src/errors.js';
import { engineOptionsSchema, type EngineOptions } from '../../src/store/machine-record.js';
import { buildDaemonConfig, renderDaemonJson } from '../../provision/daemon-config.js';

function engine(options: Partial<EngineOptions> = {}): EngineOptions {
  return engineOptionsSchema.parse({ install: 'bundle', ...options });
}

describe('buildDaemonConfig', () => {
  it('listens on the socket and on 2376 with TLS client verification, nothing else', () => {
    expect(buildDaemonConfig(engine())).toEqual({
      hosts: ['unix:///var/run/docker.sock', 'tcp://0.0.0.0:2376'],
      tls: true,
      tlsverify: true,
      tlscacert: '/etc/docker/tmachine/ca.pem',
      tlscert: '/etc/docker/tmachine/server-cert.pem',
      tlskey: '/etc/docker/tmachine/server-key.pem',
    });
  });

  it('carries labels, mirrors, insecure registries and the storage driver', () => {
    const config = buildDaemonConfig(
      engine({
        labels: ['zone=a', 'disk=ssd'],
        registryMirrors: ['https://mirror.example.org'],
        insecureRegistries: ['10.0.0.5:5000'],
        storageDriver: 'overlay2',
      }),
    );
    expect(config).toMatchObject({
      labels: ['zone=a', 'disk=ssd'],
      'registry-mirrors': ['https://mirror.example.org'],
      'insecure-registries': ['10.0.0.5:5000'],
      'storage-driver': 'overlay2',
    });
  });

  it('maps --engine-opt onto daemon.json keys, typed', () => {
    const config = buildDaemonConfig(
      engine({
        opts: [
          'log-level=warn',
          'mtu=1450',
          'live-restore=true',
          'ipv6=false',
          'default-shm-size=64M',
          'file-mode=0755',
          'dns=8.8.8.8',
          'dns=1.1.1.1',
          'exec-opt=native.cgroupdriver=systemd',
          'log-opt=max-size=10m',
          'log-opt=max-file=3',
          'label=from-opt=1',
          'bip=172.26.0.1/16',
          'bip=172.27.0.1/16',
        ],
        labels: ['zone=a'],
      }),
    );
    expect(config).toMatchObject({
      'log-level': 'warn',
      mtu: 1450,
      'live-restore': true,
      ipv6: false,
      'default-shm-size': '64M',
      'file-mode': '0755',
      // List options are lists even with Docker Machine's singular flag names.
      dns: ['8.8.8.8', '1.1.1.1'],
      'exec-opts': ['native.cgroupdriver=systemd'],
      // log-opts is a map of strings in daemon.json.
      'log-opts': { 'max-size': '10m', 'max-file': '3' },
      labels: ['zone=a', 'from-opt=1'],
      // A repeated key becomes a list.
      bip: ['172.26.0.1/16', '172.27.0.1/16'],
    });
  });

  it('uses another TLS port when asked', () => {
    expect(buildDaemonConfig(engine({ port: 12376 }))['hosts']).toEqual(['unix:///var/run/docker.sock', 'tcp://0.0.0.0:12376']);
  });

  it('refuses anything that would listen on 2375', () => {
    expect(() => buildDaemonConfig(engine({ port: 2375 }))).toThrow(TmachineError);
    expect(() => buildDaemonConfig(engine({ port: 2375 }))).toThrow(/2375/);
    expect(() => buildDaemonConfig(engine({ opts: ['host=tcp://0.0.0.0:2375'] }))).toThrow(/refusing to let the engine listen on port 2375/);
    expect(() => buildDaemonConfig(engine({ opts: ['hosts=tcp://0.0.0.0'] }))).toThrow(/2375/);
    expect(() => buildDaemonConfig(engine({ opts: ['hosts=tcp://10.0.0.1:4243'] }))).toThrow(/port 2376 only/);
  });

  it('refuses to switch TLS verification off or move its files', () => {
    expect(() => buildDaemonConfig(engine({ opts: ['tlsverify=false'] }))).toThrow(/"tlsverify" is managed by tmachine/);
    expect(() => buildDaemonConfig(engine({ opts: ['tls=false'] }))).toThrow(TmachineError);
    expect(() => buildDaemonConfig(engine({ opts: ['tlscert=/tmp/x.pem'] }))).toThrow(TmachineError);
  });

  it('accepts an extra unix socket', () => {
    expect(buildDaemonConfig(engine({ opts: ['host=unix:///run/extra.sock'] }))['hosts']).toEqual([
      'unix:///var/run/docker.sock',
      'tcp://0.0.0.0:2376',
      'unix:///run/extra.sock',
    ]);
  });

  it('rejects malformed options with a hint', () => {
    expect(() => buildDaemonConfig(engine({ opts: ['debug'] }))).toThrow(/expected key=value/);
    expect(() => buildDaemonConfig(engine({ labels: ['novalue'] }))).toThrow(/--engine-label novalue/);
    expect(() => buildDaemonConfig(engine({ storageDriver: 'overlay2', opts: ['storage-driver=btrfs'] }))).toThrow(/given twice/);
  });
});

describe('renderDaemonJson', () => {
  it('gives byte-identical output for the same input, keys sorted', () => {
    const options = engine({ labels: ['b=2', 'a=1'], opts: ['log-opt=max-size=10m', 'log-level=warn', 'log-opt=max-file=3'] });
    const first = renderDaemonJson(buildDaemonConfig(options));
    const second = renderDaemonJson(buildDaemonConfig(engine({ ...options })));
    expect(second).toBe(first);
    const keys = Object.keys(JSON.parse(first) as object);
    expect(keys).toEqual([...keys].sort());
    expect(first).toMatch(/"max-file": "3",\n\s+"max-size": "10m"/);
    expect(first.endsWith('}\n')).toBe(true);
    // Label order is the user's (it is a list, not a set of keys).
    expect(first.indexOf('b=2')).toBeLessThan(first.indexOf('a=1'));
  });
});

describe('firewall backend pin for engines 29 and newer', () => {
  const engine = (version?: string, opts: string[] = []) => ({ install: 'bundle' as const, ...(version ? { version } : {}), opts, env: [], labels: [], insecureRegistries: [], registryMirrors: [], registryCAs: [], port: 2376 });
  it('pins iptables for 29.x (swarm mode refuses nftables there), and leaves older engines alone', () => {
    expect(buildDaemonConfig(engine('29.1.0'))['firewall-backend']).toBe('iptables');
    expect(buildDaemonConfig(engine('27.3.1'))['firewall-backend']).toBeUndefined();
    expect(buildDaemonConfig(engine('20.10.24'))['firewall-backend']).toBeUndefined();
    expect(buildDaemonConfig(engine(undefined))['firewall-backend']).toBeUndefined();
  });
});

