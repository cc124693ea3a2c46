/** The user-defined network the host containers share, and fixed addresses on it. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type Docker from 'dockerode';
import { DriverError, serialized } from '../kit/index.js';

export interface HostNetwork {
  /** The network's ID: names are not unique to the engine, IDs are. */
  id: string;
  name: string;
  subnet: string;
  gateway: string;
}

/** Tried in order when no --docker-subnet is given; the first that overlaps nothing wins. */
export const CANDIDATE_SUBNETS = Array.from({ length: 20 }, (_, i) => `10.${77 + i}.0.0/24`);

/**
 * Parallel creates in one process share one network: creation is serialized per name. For
 * an engine on this machine (`local`), a new network's subnet must also be free in this
 * machine's routing table: a second engine's bridge with the same subnet is invisible to
 * this engine but would send our SSH to a stranger.
 */
export function ensureNetwork(d: Docker, name: string, subnet: string | undefined, local: boolean, internal = false): Promise<HostNetwork> {
  return serialized(`network:${name}`, () => ensureNetworkNow(d, name, subnet, local, internal));
}

export interface Route {
  network: number;
  mask: number;
  /** The device, or the route type (blackhole, unreachable) for routes without one. */
  device: string;
}

const ROUTE_TYPES = new Set(['unicast', 'local', 'broadcast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'multicast', 'anycast', 'nat']);

/**
 * IPv4 routes of this machine in every table (except default routes), as `ip route` shows
 * them: blackhole and unreachable routes count too. Falls back to /proc/net/route (main
 * table only) where iproute2 is missing.
 */
export function routedSubnets(): Route[] {
  try {
    return parseIpRoutes(execFileSync('ip', ['-o', '-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    return parseProcRoutes(readFileOr('/proc/net/route'));
  }
}

/** Lines of `ip -o -4 route show`: "[TYPE] DEST[/BITS] [dev DEV] ...". */
export function parseIpRoutes(text: string): Route[] {
  const routes: Route[] = [];
  for (const line of text.split('\n')) {
    const tokens = line.trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0) continue;
    const type = ROUTE_TYPES.has(tokens[0]!) ? tokens.shift()! : 'unicast';
    const destination = tokens[0];
    if (!destination || destination === 'default' || !/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(destination)) continue;
    const [base, bitsText] = destination.split('/');
    const bits = bitsText === undefined ? 32 : Number(bitsText);
    if (bits === 0) continue;
    const mask = (0xffffffff << (32 - bits)) >>> 0;
    const dev = tokens.indexOf('dev');
    routes.push({ network: (ipToInt(base!) & mask) >>> 0, mask, device: dev >= 0 ? (tokens[dev + 1] ?? type) : type });
  }
  return routes;
}

/** /proc/net/route (addresses as little-endian hex). */
export function parseProcRoutes(text: string): Route[] {
  const routes: Route[] = [];
  for (const line of text.split('\n').slice(1)) {
    const [device, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (!device || !destination || !mask) continue;
    const le = (hex: string) => Buffer.from(hex, 'hex').readUInt32LE(0);
    const m = le(mask);
    if (m === 0) continue;
    routes.push({ network: (le(destination) & m) >>> 0, mask: m, device });
  }
  return routes;
}

function readFileOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function subnetOverlapsRoute(cidr: string, routes: Route[] = routedSubnets()): { device: string } | undefined {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const network = (ipToInt(base!) & mask) >>> 0;
  for (const r of routes) {
    const common = (mask & r.mask) >>> 0;
    if (((network & common) >>> 0) === ((r.network & common) >>> 0)) return { device: r.device };
  }
  return undefined;
}

async function ensureNetworkNow(d: Docker, name: string, subnet: string | undefined, local: boolean, internal: boolean): Promise<HostNetwork> {
  await dropDuplicates(d, name);
  let info = await d.getNetwork(name).inspect().catch((error: { statusCode?: number }) => {
    if (error.statusCode === 404) return undefined;
    throw error;
  });
  if (!info) {
    // Fixed addresses need a subnet the user (here: tmachine) configured, not one Docker picked.
    const routes = local ? routedSubnets() : [];
    if (subnet) {
      const clash = subnetOverlapsRoute(subnet, routes);
      if (clash) {
        throw new DriverError('invalid-input', `--docker-subnet ${subnet} overlaps a route of this machine (device ${clash.device})`, {
          hint: 'choose a subnet that `ip route` does not show',
        });
      }
    }
    const candidates = subnet ? [subnet] : CANDIDATE_SUBNETS.filter((c) => !subnetOverlapsRoute(c, routes));
    if (candidates.length === 0) {
      throw new DriverError('failed', `every candidate subnet (${CANDIDATE_SUBNETS[0]} to ${CANDIDATE_SUBNETS.at(-1)}) overlaps a route of this machine`, {
        hint: 'pass --docker-subnet with a free subnet',
      });
    }
    for (const candidate of candidates) {
      try {
        await d.createNetwork({
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          // Internal: Docker adds no NAT and no forwarding out of the bridge; this machine
          // still reaches the hosts on the bridge's own address.
          Internal: internal,
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
          throw new DriverError('failed', `could not create docker network "${name}" (${candidate}): ${String((error as Error).message).split('\n')[0]}`, {
            hint: 'pass --docker-subnet with a free subnet',
          });
        }
      }
    }
    // Docker's duplicate check is not atomic: another process may have made one too.
    await dropDuplicates(d, name);
    info = await d.getNetwork(name).inspect();
  }
  if (internal && info.Internal !== true) {
    // Asked for no route out, the network that exists has one: never silently go online.
    throw new DriverError('invalid-input', `docker network "${name}" exists and is not internal, so its hosts can reach the internet`, {
      hint: 'pass --docker-network with a new name (tmachine creates it internal), or remove that network',
    });
  }
  const config = (info.IPAM?.Config ?? []).find((c: { Subnet?: string }) => c.Subnet && c.Subnet.includes('.'));
  if (!config?.Subnet) {
    throw new DriverError('failed', `docker network "${name}" has no configured IPv4 subnet, so hosts cannot get fixed addresses`, {
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
  throw new DriverError('failed', `docker network "${network.name}" (${network.subnet}) has no free address`, { hint: 'use another --docker-network' });
}
