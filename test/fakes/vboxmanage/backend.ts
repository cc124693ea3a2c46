/**
 * The hypervisor behind the fake VBoxManage: an HTTP server on 127.0.0.1 in the test process
 * that does what VirtualBox would do to real machines. `startvm` boots a real test host
 * (test/support/cloud-host.ts) whose cloud-init applies the seed ISO the driver attached;
 * its SSH is published at the NAT port forward (127.0.0.1:PORT), and its address on the
 * docker network that stands for the host-only interface is the one the guest configured
 * from the seed's network-config (matched by the NIC's MAC), as a VirtualBox guest would.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { parse as parseYaml } from 'yaml';
import { removeByLabel, startCloudHost, TEST_NETWORK_LABEL, type CloudHost } from '../../support/cloud-host.js';

const execFileAsync = promisify(execFile);
export const FAKE_VBOX_BIN = path.dirname(fileURLToPath(import.meta.url));

export interface FakeVBoxState {
  vms: Record<string, { uuid: string; name: string; state: string; dir: string; attachments: Array<{ type: string; medium: string }>; nics: Record<string, { mode: string; natpf: string[]; hostonlyadapter: string; mac: string }> }>;
  media: Record<string, { uuid: string; location: string; kind: string; capacityBytes: number }>;
  hostonlyifs: Record<string, { name: string; ip: string; mask: string }>;
  extradata: Record<string, string>;
}

export interface FakeVBox {
  home: string;
  url: string;
  /** Environment for a CLI run with the fake first on PATH. */
  env(faults?: string[]): Record<string, string>;
  /** Every recorded VBoxManage call, oldest first. */
  calls(): string[][];
  state(): FakeVBoxState;
  host(name: string): CloudHost | undefined;
  close(): Promise<void>;
}

interface StartBody {
  uuid: string;
  name: string;
  seedIso?: string;
  ssh?: { hostIp: string; hostPort: number };
  hostOnly?: { interface: string; mac: string };
  consoleLog?: string;
}

export async function startFakeVBox(docker: Dockerode, options: { label: string; value: string; prefix: string }): Promise<FakeVBox> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-fake-vbox-'));
  const labels = { [options.label]: options.value };
  const hosts = new Map<string, { host: CloudHost; name: string }>();
  const networkOf = (iface: string) => `${options.prefix}-${iface}`;
  const consoleWriters: Array<Promise<void>> = [];

  const routes: Record<string, (body: Record<string, unknown>) => Promise<unknown>> = {
    '/hostonlyif': async (body) => {
      const { name, ip, mask } = body as { name: string; ip: string; mask: string };
      const prefix = maskToPrefix(mask);
      const subnet = `${intToIp((ipToInt(ip) & ipToInt(mask)) >>> 0)}/${prefix}`;
      const network = networkOf(name);
      const existing = await docker.getNetwork(network).inspect().catch(() => undefined) as Dockerode.NetworkInspectInfo | undefined;
      const config = existing?.IPAM?.Config?.[0];
      if (existing && config?.Subnet === subnet && config.Gateway === ip) return {};
      if (existing) await docker.getNetwork(network).remove();
      // This computer's side of a host-only network is the bridge's gateway address, as vboxnetN's is.
      await docker.createNetwork({
        Name: network,
        Driver: 'bridge',
        CheckDuplicate: true,
        Labels: { ...labels, [TEST_NETWORK_LABEL]: network },
        IPAM: { Driver: 'default', Config: [{ Subnet: subnet, Gateway: ip }] },
      });
      return {};
    },
    '/hostonlyif/remove': async (body) => {
      await docker
        .getNetwork(networkOf(String(body['name'])))
        .remove()
        .catch((e: { statusCode?: number }) => {
          if (e.statusCode !== 404) throw e;
        });
      return {};
    },
    '/vm/start': async (raw) => {
      const body = raw as unknown as StartBody;
      const known = hosts.get(body.uuid);
      if (body.consoleLog) fs.appendFileSync(body.consoleLog, '');
      if (known) {
        await known.host.start();
        return {};
      }
      if (!body.seedIso) throw new Error('the VM has no DVD attached: nothing would configure the guest');
      if (!body.hostOnly) throw new Error('the VM has no host-only NIC');
      const ip = await guestAddress(body.seedIso, body.hostOnly.mac);
      const host = await startCloudHost(docker, {
        name: `${options.prefix}-${body.name}`,
        network: networkOf(body.hostOnly.interface),
        ip,
        seed: { isoPath: body.seedIso },
        labels,
        ...(body.ssh ? { publishSsh: { hostIp: '127.0.0.1' as const, hostPort: body.ssh.hostPort } } : {}),
      });
      hosts.set(body.uuid, { host, name: body.name });
      if (body.consoleLog) {
        // The serial console: what cloud-init prints, host keys included.
        const log = body.consoleLog;
        consoleWriters.push(
          host
            .consoleHostKeyBlock()
            .then(async () => fs.writeFileSync(log, await host.consoleOutput()))
            .catch(() => undefined),
        );
      }
      return {};
    },
    '/vm/acpi': async (body) => {
      // The guest hears the power button and shuts itself down, in its own time.
      void hosts.get(String(body['uuid']))?.host.stop().catch(() => undefined);
      return {};
    },
    '/vm/poweroff': async (body) => {
      await hosts.get(String(body['uuid']))?.host.kill();
      return {};
    },
    '/vm/reset': async (body) => {
      const known = hosts.get(String(body['uuid']));
      if (known) {
        await known.host.kill();
        await known.host.start();
      }
      return {};
    },
    '/vm/pause': async (body) => {
      await hosts.get(String(body['uuid']))?.host.pause();
      return {};
    },
    '/vm/resume': async (body) => {
      await hosts.get(String(body['uuid']))?.host.unpause();
      return {};
    },
    '/vm/delete': async (body) => {
      const uuid = String(body['uuid']);
      await hosts.get(uuid)?.host.remove();
      hosts.delete(uuid);
      return {};
    },
    '/vm/states': async (body) => {
      const out: Record<string, boolean> = {};
      for (const uuid of body['uuids'] as string[]) {
        const known = hosts.get(uuid);
        if (!known) {
          out[uuid] = true;
          continue;
        }
        const info = await docker.getContainer(known.host.id).inspect().catch(() => undefined);
        out[uuid] = Boolean(info?.State?.Running);
      }
      return out;
    },
  };

  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const route = routes[new URL(req.url ?? '/', 'http://x').pathname];
      if (!route) {
        res.writeHead(404).end('no such route');
        return;
      }
      route(text ? (JSON.parse(text) as Record<string, unknown>) : {}).then(
        (answer) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)),
        (error: unknown) => res.writeHead(500).end(error instanceof Error ? error.message : String(error)),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

  return {
    home,
    url,
    env: (faults = []) => ({
      PATH: `${FAKE_VBOX_BIN}${path.delimiter}${process.env['PATH'] ?? ''}`,
      TMACHINE_FAKE_VBOX_HOME: home,
      TMACHINE_FAKE_VBOX_BACKEND: url,
      TMACHINE_FAKE_VBOX_FAULTS: faults.join(','),
    }),
    calls: () => {
      const file = path.join(home, 'calls.jsonl');
      if (!fs.existsSync(file)) return [];
      return fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as { argv: string[] }).argv);
    },
    state: () => {
      const file = path.join(home, 'state.json');
      return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as FakeVBoxState) : { vms: {}, media: {}, hostonlyifs: {}, extradata: {} };
    },
    host: (name) => [...hosts.values()].find((h) => h.name === name)?.host,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled(consoleWriters);
      await removeByLabel(docker, options.label, options.value);
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

/** The address the guest gives the NIC with this MAC, from the seed's network-config (v2 or v1). */
async function guestAddress(isoPath: string, mac: string): Promise<string> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tmachine-netcfg-'));
  let stdout: string;
  try {
    await execFileAsync('osirrox', ['-indev', isoPath, '-extract', '/network-config', path.join(work, 'network-config')]);
    stdout = fs.readFileSync(path.join(work, 'network-config'), 'utf8');
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const config = parseYaml(stdout) as { ethernets?: Record<string, { match?: { macaddress?: string }; addresses?: string[] }> } | null;
  const wanted = mac.toLowerCase().match(/../g)!.join(':');
  for (const nic of Object.values(config?.ethernets ?? {})) {
    if (nic.match?.macaddress?.toLowerCase() === wanted && nic.addresses?.[0]) return nic.addresses[0].split('/')[0]!;
  }
  throw new Error(`the seed's network-config gives the host-only NIC (${wanted}) no static address`);
}

function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function maskToPrefix(mask: string): number {
  const n = ipToInt(mask);
  let prefix = 0;
  while (prefix < 32 && (n & (0x80000000 >>> prefix)) !== 0) prefix++;
  return prefix;
}
