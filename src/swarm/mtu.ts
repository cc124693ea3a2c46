/**
 * Overlay MTU (SPEC §4). VXLAN adds 50 bytes to every packet; on a NIC whose MTU is below
 * 1500 (Compute Engine's VPCs default to 1460) an overlay network left at 1500 sends packets
 * the network drops without a word: small requests work, anything bigger hangs. So when the
 * nodes' NIC MTU is below 1500, the ingress network and the overlay networks tmachine makes
 * get the NIC MTU minus 50, and `swarm deploy` warns about stack networks that do not fit.
 */
import type Docker from 'dockerode';
import { parse as parseYaml } from 'yaml';
import { waitFor } from '../../drivers/kit/index.js';
import { TmachineError } from '../errors.js';

export const ETHERNET_MTU = 1500;
export const VXLAN_OVERHEAD = 50;
/** The overlay driver's option for the MTU of a network's VXLAN interfaces. */
export const MTU_OPTION = 'com.docker.network.driver.mtu';

/** Runs one command on a node and resolves with its stdout (RemoteHost.run fits). */
export type RunOnNode = (command: string) => Promise<string>;

/** Addresses, links and the default route in one round trip. */
export const NIC_MTU_PROBE = "ip -o -4 addr show; echo '--links--'; ip -o link show; echo '--route--'; ip -o -4 route show default";

/**
 * The MTU of the NIC that carries `address` (the node's swarm address), else of the NIC of
 * the default route, from NIC_MTU_PROBE's output.
 */
export function parseNicMtu(output: string, address?: string): number | undefined {
  const [addrs = '', rest = ''] = output.split('--links--');
  const [links = '', routes = ''] = rest.split('--route--');
  const mtuOf = new Map<string, number>();
  for (const line of links.split('\n')) {
    // "2: eth0@if17: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1460 qdisc noqueue state UP ..."
    const m = /^\d+:\s+([^:@\s]+)(?:@\S+)?:\s.*\bmtu (\d+)/.exec(line.trim());
    if (m) mtuOf.set(m[1]!, Number(m[2]));
  }
  let nic: string | undefined;
  if (address) {
    for (const line of addrs.split('\n')) {
      // "2: eth0    inet 10.203.0.10/24 brd 10.203.0.255 scope global eth0 ..."
      const m = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(line.trim());
      if (m && m[2] === address) nic = m[1]!;
    }
  }
  nic ??= /\bdev (\S+)/.exec(routes)?.[1];
  return nic ? mtuOf.get(nic) : undefined;
}

export async function readNicMtu(run: RunOnNode, node: string, address?: string): Promise<number> {
  const mtu = parseNicMtu(await run(NIC_MTU_PROBE), address);
  if (mtu === undefined) throw new TmachineError(`cannot tell the NIC MTU of ${node}${address ? ` (no interface has ${address})` : ''}`, { hint: 'set the overlay MTU in the cluster file (swarm: mtu:)' });
  return mtu;
}

/** The overlay MTU a cluster needs: the given one, else 50 below the smallest NIC MTU when that is below 1500. */
export function overlayMtuFor(nicMtus: number[], explicit?: number): number | undefined {
  if (explicit !== undefined) return explicit;
  if (nicMtus.length === 0) return undefined;
  const smallest = Math.min(...nicMtus);
  return smallest < ETHERNET_MTU ? smallest - VXLAN_OVERHEAD : undefined;
}

type NetworkInfo = { Id: string; Name: string; Ingress?: boolean; Driver?: string; Options?: Record<string, string> | null; IPAM?: { Config?: Array<{ Subnet?: string; Gateway?: string }> | null } };

async function ingressNetwork(docker: Docker): Promise<NetworkInfo | undefined> {
  const list = (await docker.listNetworks({ filters: { driver: ['overlay'] } })) as NetworkInfo[];
  const found = list.find((n) => n.Ingress === true || n.Name === 'ingress');
  return found ? ((await docker.getNetwork(found.Id).inspect()) as NetworkInfo) : undefined;
}

/** True when the ingress network already has this MTU. */
export async function ingressMtuHolds(docker: Docker, mtu: number): Promise<boolean> {
  return (await ingressNetwork(docker))?.Options?.[MTU_OPTION] === String(mtu);
}

/**
 * Gives the swarm's ingress network the MTU (on the leader). Docker cannot change a network's
 * options, so it is removed and made again with the same subnet; that needs no service to
 * publish a port through it, so this runs right after `swarm init`.
 */
export async function ensureIngressMtu(docker: Docker, mtu: number, deadlineMs = 60_000): Promise<'already' | 'recreated'> {
  const current = await ingressNetwork(docker);
  if (current && current.Options?.[MTU_OPTION] === String(mtu)) return 'already';
  if (current) {
    const services = (await docker.listServices()) as Array<{ Spec?: { Name?: string }; Endpoint?: { Spec?: { Ports?: Array<{ PublishMode?: string }> } } }>;
    const users = services.filter((s) => (s.Endpoint?.Spec?.Ports ?? []).some((p) => (p.PublishMode ?? 'ingress') === 'ingress')).map((s) => s.Spec?.Name ?? '?');
    if (users.length > 0) {
      throw new TmachineError(`the ingress network needs MTU ${mtu}, but services publish ports through it: ${users.join(', ')}`, {
        hint: 'remove those services (or publish with mode=host), then run `swarm bootstrap` again',
      });
    }
    await docker.getNetwork(current.Id).remove();
    await waitFor(async () => ((await ingressNetwork(docker)) ? undefined : true), { what: 'the old ingress network removed', deadlineMs, intervalMs: 100, maxIntervalMs: 1_000 });
  }
  const ipam = (current?.IPAM?.Config ?? []).filter((c) => c.Subnet).map((c) => ({ Subnet: c.Subnet!, ...(c.Gateway ? { Gateway: c.Gateway } : {}) }));
  await docker.createNetwork({
    Name: 'ingress',
    Driver: 'overlay',
    Ingress: true,
    CheckDuplicate: true,
    Options: { [MTU_OPTION]: String(mtu) },
    ...(ipam.length > 0 ? { IPAM: { Driver: 'default', Config: ipam } } : {}),
  } as Docker.NetworkCreateOptions);
  return 'recreated';
}

/** An overlay network tmachine makes (attachable), with the cluster's MTU when it has one. */
export async function ensureOverlayNetwork(docker: Docker, name: string, mtu: number | undefined, labels: Record<string, string> = {}): Promise<'already' | 'created' | 'other-mtu'> {
  const existing = ((await docker.listNetworks({ filters: { name: [name] } })) as NetworkInfo[]).find((n) => n.Name === name);
  if (existing) {
    const info = (await docker.getNetwork(existing.Id).inspect()) as NetworkInfo;
    return mtu === undefined || info.Options?.[MTU_OPTION] === String(mtu) ? 'already' : 'other-mtu';
  }
  await docker.createNetwork({ Name: name, Driver: 'overlay', Attachable: true, CheckDuplicate: true, Labels: labels, ...(mtu !== undefined ? { Options: { [MTU_OPTION]: String(mtu) } } : {}) } as Docker.NetworkCreateOptions);
  return 'created';
}

export interface SwarmMtuNode {
  name: string;
  run: RunOnNode;
  /** The node's swarm (advertise/data-path) address. */
  address?: string;
}

export interface SwarmMtuResult {
  /** The smallest NIC MTU among the nodes. */
  nicMtu: number;
  /** The overlay MTU applied; undefined when the NICs take 1500 and nothing was given. */
  overlayMtu?: number;
  ingress: 'already' | 'recreated' | 'not-needed';
}

/**
 * What `swarm bootstrap` runs after `swarm init`: reads every node's NIC MTU and, when one is
 * below 1500 (or the cluster file sets `mtu`), gives the ingress network the overlay MTU.
 */
export async function applySwarmMtu(leader: Docker, nodes: SwarmMtuNode[], explicitMtu?: number): Promise<SwarmMtuResult> {
  const mtus = await Promise.all(nodes.map((n) => readNicMtu(n.run, n.name, n.address)));
  const nicMtu = Math.min(...mtus);
  const overlayMtu = overlayMtuFor(mtus, explicitMtu);
  if (overlayMtu === undefined) return { nicMtu, ingress: 'not-needed' };
  if (overlayMtu > nicMtu - VXLAN_OVERHEAD) {
    throw new TmachineError(`overlay MTU ${overlayMtu} does not fit the nodes' NIC MTU ${nicMtu} (VXLAN needs ${VXLAN_OVERHEAD} bytes)`, { hint: `set mtu to ${nicMtu - VXLAN_OVERHEAD} or less` });
  }
  return { nicMtu, overlayMtu, ingress: await ensureIngressMtu(leader, overlayMtu) };
}

/**
 * One warning per overlay network of a stack file whose MTU would not fit (none set, or too
 * big), including the stack's implicit default network. External networks are the owner's.
 */
export function stackMtuWarnings(stackYaml: string, stack: string, overlayMtu: number): string[] {
  const doc = (parseYaml(stackYaml) ?? {}) as { services?: Record<string, { networks?: unknown } | null>; networks?: Record<string, { driver?: string; external?: unknown; name?: string; driver_opts?: Record<string, unknown> } | null> };
  const networks = doc.networks ?? {};
  const warnings: string[] = [];
  const fix = `driver_opts: { ${MTU_OPTION}: "${overlayMtu}" }`;
  const usesDefault = Object.values(doc.services ?? {}).some((s) => !s?.networks || (Array.isArray(s.networks) ? s.networks.includes('default') : 'default' in (s.networks as object)));
  if (usesDefault && !('default' in networks)) {
    warnings.push(`stack ${stack}: its default network gets MTU 1500, but the nodes need ${overlayMtu} or less; define networks: { default: { ${fix} } }, or bigger packets between tasks are dropped`);
  }
  for (const [name, def] of Object.entries(networks)) {
    if (def?.external) continue;
    if ((def?.driver ?? 'overlay') !== 'overlay') continue;
    const value = def?.driver_opts?.[MTU_OPTION];
    if (value === undefined) warnings.push(`stack ${stack}: overlay network "${name}" has no ${MTU_OPTION}; the nodes need ${overlayMtu} or less (${fix}), or bigger packets between tasks are dropped`);
    else if (!(Number(value) > 0 && Number(value) <= overlayMtu)) warnings.push(`stack ${stack}: overlay network "${name}" has ${MTU_OPTION} ${String(value)}, more than the ${overlayMtu} the nodes allow; use ${fix}`);
  }
  return warnings;
}
