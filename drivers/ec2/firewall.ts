/**
 * The security group's rules (SPEC §4): 22 and 2376 from the source ranges; the swarm ports
 * only from the group itself (every member carries it); ESP only when overlays are
 * encrypted; extra ports from the source ranges; a stack's published ports from the range
 * `swarm deploy --open-ports` names. Rules are compared one peer at a time, so only the
 * missing ones are added.
 */
import type { IpPermission } from '@aws-sdk/client-ec2';
import type { ClusterHints, PortToOpen } from '../kit/index.js';

export interface Rule {
  /** "tcp", "udp", or an IP protocol number ("50" for ESP). */
  protocol: string;
  fromPort?: number;
  toPort?: number;
  cidr?: string;
  /** The group itself (self-reference). */
  self?: true;
  description: string;
}

export const DEFAULT_DATA_PATH_PORT = 4789;

/** The description of every rule `swarm deploy --open-ports` adds: only those are ever revoked. */
export const PUBLISHED_MARK = 'swarm deploy --open-ports';

export function desiredRules(sourceCidrs: string[], openPorts: string[], cluster: ClusterHints | undefined): Rule[] {
  const rules: Rule[] = [];
  for (const cidr of sourceCidrs) {
    rules.push({ protocol: 'tcp', fromPort: 22, toPort: 22, cidr, description: 'SSH (key only)' });
    rules.push({ protocol: 'tcp', fromPort: 2376, toPort: 2376, cidr, description: 'Docker engine (TLS client certificate only)' });
  }
  const dataPath = cluster?.dataPathPort ?? DEFAULT_DATA_PATH_PORT;
  rules.push({ protocol: 'tcp', fromPort: 2377, toPort: 2377, self: true, description: 'swarm management' });
  rules.push({ protocol: 'tcp', fromPort: 7946, toPort: 7946, self: true, description: 'swarm gossip' });
  rules.push({ protocol: 'udp', fromPort: 7946, toPort: 7946, self: true, description: 'swarm gossip' });
  rules.push({ protocol: 'udp', fromPort: dataPath, toPort: dataPath, self: true, description: 'swarm overlay data path (VXLAN)' });
  if (cluster?.encryptedOverlay) rules.push({ protocol: '50', self: true, description: 'encrypted overlay (ESP)' });
  for (const spec of openPorts) {
    const [range = '', protocol = 'tcp'] = spec.split('/');
    const [from, to = from] = range.split('-').map(Number);
    for (const cidr of sourceCidrs) rules.push({ protocol, fromPort: from!, toPort: to!, cidr, description: `--ec2-open-port ${spec}` });
  }
  return rules;
}

/** A stack's published ports, from one range (`swarm deploy --open-ports --source-cidr`). */
export function publishedPortRules(ports: PortToOpen[], cidr: string): Rule[] {
  return ports.map((p) => ({ protocol: p.protocol, fromPort: p.port, toPort: p.port, cidr, description: `${PUBLISHED_MARK} ${p.port}/${p.protocol}` }));
}

/**
 * Rules `swarm deploy --open-ports` added before for the same ports from another range: the
 * range given now replaces them (as in the host firewall). Rules of any other origin stay.
 */
export function replacedRules(wanted: Rule[], existing: IpPermission[]): Rule[] {
  const stale: Rule[] = [];
  for (const permission of existing) {
    for (const range of [...(permission.IpRanges ?? []).map((r) => ({ cidr: r.CidrIp, description: r.Description })), ...(permission.Ipv6Ranges ?? []).map((r) => ({ cidr: r.CidrIpv6, description: r.Description }))]) {
      if (!range.cidr || !range.description?.startsWith(PUBLISHED_MARK)) continue;
      const same = wanted.some((w) => w.protocol === permission.IpProtocol && w.fromPort === permission.FromPort && w.toPort === permission.ToPort && w.cidr !== range.cidr);
      if (same) stale.push({ protocol: permission.IpProtocol ?? '', fromPort: permission.FromPort!, toPort: permission.ToPort!, cidr: range.cidr, description: range.description });
    }
  }
  return stale;
}

function key(rule: { protocol: string; fromPort?: number | undefined; toPort?: number | undefined; peer: string }): string {
  const ports = rule.protocol === 'tcp' || rule.protocol === 'udp' ? `${rule.fromPort}-${rule.toPort}` : '';
  return `${rule.protocol}/${ports}/${rule.peer}`;
}

/** The rules of `desired` the group does not have yet. */
export function missingRules(desired: Rule[], existing: IpPermission[], groupId: string): Rule[] {
  const have = new Set<string>();
  for (const permission of existing) {
    const protocol = permission.IpProtocol ?? '';
    const base = { protocol, fromPort: permission.FromPort, toPort: permission.ToPort };
    for (const range of permission.IpRanges ?? []) have.add(key({ ...base, peer: range.CidrIp ?? '' }));
    for (const range of permission.Ipv6Ranges ?? []) have.add(key({ ...base, peer: range.CidrIpv6 ?? '' }));
    for (const pair of permission.UserIdGroupPairs ?? []) have.add(key({ ...base, peer: pair.GroupId ?? '' }));
  }
  const seen = new Set<string>();
  return desired.filter((rule) => {
    const k = key({ ...rule, peer: rule.self ? groupId : rule.cidr! });
    if (have.has(k) || seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function toPermissions(rules: Rule[], groupId: string): IpPermission[] {
  return rules.map((rule) => ({
    IpProtocol: rule.protocol,
    ...(rule.fromPort !== undefined ? { FromPort: rule.fromPort, ToPort: rule.toPort } : {}),
    ...(rule.self
      ? { UserIdGroupPairs: [{ GroupId: groupId, Description: rule.description }] }
      : rule.cidr?.includes(':')
        ? { Ipv6Ranges: [{ CidrIpv6: rule.cidr, Description: rule.description }] }
        : { IpRanges: [{ CidrIp: rule.cidr, Description: rule.description }] }),
  }));
}
