/** The user-defined network the host containers share, and fixed addresses on it. */
import type Docker from 'dockerode';
import { serialized } from '../../src/async.js';
import { TmachineError } from '../../src/errors.js';

export interface HostNetwork {
  /** The network's ID: names are not unique to the engine, IDs are. */
  id: string;
  name: string;
  subnet: string;
  gateway: string;
}

/** Tried in order when no --docker-subnet is given; the first that overlaps nothing wins. */
const CANDIDATE_SUBNETS = Array.from({ length: 20 }, (_, i) => `10.${77 + i}.0.0/24`);

/** Parallel creates in one process share one network: creation is serialized per name. */
export function ensureNetwork(d: Docker, name: string, subnet?: string): Promise<HostNetwork> {
  return serialized(`network:${name}`, () => ensureNetworkNow(d, name, subnet));
}

async function ensureNetworkNow(d: Docker, name: string, subnet?: string): Promise<HostNetwork> {
  await dropDuplicates(d, name);
  let info = await d.getNetwork(name).inspect().catch((error: { statusCode?: number }) => {
    if (error.statusCode === 404) return undefined;
    throw error;
  });
  if (!info) {
    // Fixed addresses need a subnet the user (here: tmachine) configured, not one Docker picked.
    const candidates = subnet ? [subnet] : CANDIDATE_SUBNETS;
    for (const candidate of candidates) {
      try {
        await d.createNetwork({
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: { 'tmachine.network': name },
          IPAM: { Driver: 'default', Config: [{ Subnet: candidate }] },
        });
        break;
      } catch (error) {
        const status = (error as { statusCode?: number }).statusCode;
        // 409: another tmachine process made it at the same moment.
        if (status === 409) break;
        const overlaps = /overlap/i.test(String((error as Error).message));
        if (!overlaps || candidate === candidates[candidates.length - 1]) {
          throw new TmachineError(`could not create docker network "${name}" (${candidate}): ${String((error as Error).message).split('\n')[0]}`, {
            hint: 'pass --docker-subnet with a free subnet',
          });
        }
      }
    }
    // Docker's duplicate check is not atomic: another process may have made one too.
    await dropDuplicates(d, name);
    info = await d.getNetwork(name).inspect();
  }
  const config = (info.IPAM?.Config ?? []).find((c: { Subnet?: string }) => c.Subnet && c.Subnet.includes('.'));
  if (!config?.Subnet) {
    throw new TmachineError(`docker network "${name}" has no configured IPv4 subnet, so hosts cannot get fixed addresses`, {
      hint: 'pass --docker-network with another name and tmachine creates it',
    });
  }
  return { id: String(info.Id), name, subnet: config.Subnet, gateway: config.Gateway ?? '' };
}

/** Keeps the oldest of several networks with one name; removes the empty younger ones. */
async function dropDuplicates(d: Docker, name: string): Promise<void> {
  const same = (await d.listNetworks({ filters: { name: [name] } })).filter((n) => n.Name === name);
  if (same.length < 2) return;
  same.sort((a, b) => String(a.Created).localeCompare(String(b.Created)));
  for (const extra of same.slice(1)) await d.getNetwork(extra.Id).remove().catch(() => undefined);
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 255).join('.');
}

/** The lowest free address from .10 up (Docker's gateway and low addresses stay clear). */
export async function allocateAddress(d: Docker, network: HostNetwork): Promise<string> {
  const [base, bitsText] = network.subnet.split('/');
  const bits = Number(bitsText);
  const start = ipToInt(base!) + 10;
  const end = ipToInt(base!) + 2 ** (32 - bits) - 2;
  const info = await d.getNetwork(network.id).inspect();
  const taken = new Set<string>([network.gateway]);
  for (const c of Object.values((info.Containers ?? {}) as Record<string, { IPv4Address?: string }>)) {
    if (c.IPv4Address) taken.add(c.IPv4Address.split('/')[0]!);
  }
  // Stopped containers keep their fixed address but are not listed: ask the engine for them too.
  const all = await d.listContainers({ all: true, filters: { network: [network.name] } });
  for (const c of all) {
    const settings = c.NetworkSettings?.Networks?.[network.name] as { IPAMConfig?: { IPv4Address?: string } } | undefined;
    if (settings?.IPAMConfig?.IPv4Address) taken.add(settings.IPAMConfig.IPv4Address);
  }
  for (let n = start; n <= end; n++) {
    const ip = intToIp(n);
    if (!taken.has(ip)) return ip;
  }
  throw new TmachineError(`docker network "${network.name}" (${network.subnet}) has no free address`, { hint: 'use another --docker-network' });
}
