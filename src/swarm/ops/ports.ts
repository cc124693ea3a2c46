/**
 * Published ports of a stack, and opening them in the host firewall from one source range
 * (`swarm deploy --open-ports --source-cidr CIDR`). Ports the engine publishes are
 * DNAT-ed before INPUT ever sees them, so a host's INPUT rules do not guard them: the rules
 * go into a chain of tmachine's own, TMACHINE-PORTS, jumped to from DOCKER-USER (the chain
 * Docker leaves to the administrator) and from INPUT, matching the port the client asked
 * for (conntrack's original destination port): traffic from the CIDR returns to the usual
 * path, any other source is dropped. The chain's rules are saved on the host
 * (/etc/tmachine/ports.rules) and put back at boot, once the engine has made DOCKER-USER, by
 * a oneshot service (tmachine-ports; OpenRC on Alpine). Then the cloud firewall: every member whose driver has
 * `openPorts` (ec2, gce) opens the ports there, from the same range only.
 */
import net from 'node:net';
import { TmachineError } from '../../errors.js';
import { connectMachine } from '../../machine/connect.js';
import { driverOf } from '../../machine/driver-instance.js';
import type { Store } from '../../store/store.js';
import type { Member } from '../engines.js';
import { bootOpenrcScript, bootSystemdUnit } from '../../../provision/firewall.js';
import { shellQuote } from '../../../provision/os.js';

export const PORTS_CHAIN = 'TMACHINE-PORTS';

export interface PublishedPort {
  service: string;
  port: number;
  protocol: 'tcp' | 'udp';
  mode: 'host' | 'ingress';
}

type StackDoc = { services?: Record<string, { ports?: unknown[] } | null> } | null;

/** Short ("8080:80", "8080:80/udp", "127.0.0.1:8080:80") and long ({ published, protocol, mode }) syntax. */
export function publishedPorts(doc: unknown): PublishedPort[] {
  const out: PublishedPort[] = [];
  for (const [service, spec] of Object.entries((doc as StackDoc)?.services ?? {})) {
    for (const p of spec?.ports ?? []) {
      if (typeof p === 'string' || typeof p === 'number') {
        const [mapping, proto] = String(p).split('/');
        const parts = mapping!.split(':');
        if (parts.length < 2) continue; // only a target port: nothing published on a fixed port
        if (parts.length === 3 && parts[0] !== '0.0.0.0') continue; // bound to one address
        const published = Number(parts[parts.length - 2]);
        if (Number.isInteger(published)) out.push({ service, port: published, protocol: proto === 'udp' ? 'udp' : 'tcp', mode: 'ingress' });
      } else if (p && typeof p === 'object') {
        const long = p as { published?: unknown; protocol?: unknown; mode?: unknown };
        const published = Number(long.published);
        if (!Number.isInteger(published) || published <= 0) continue;
        out.push({ service, port: published, protocol: long.protocol === 'udp' ? 'udp' : 'tcp', mode: long.mode === 'host' ? 'host' : 'ingress' });
      }
    }
  }
  return out;
}

export function checkCidr(cidr: string): void {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  const family = m ? net.isIP(m[1]!) : 0;
  if (!m || family === 0 || Number(m[2]) > (family === 4 ? 32 : 128)) {
    throw new TmachineError(`--source-cidr "${cidr}" is not an address range`, { hint: 'for example 203.0.113.0/24' });
  }
}

export const PORTS_RULES_PATH = '/etc/tmachine/ports.rules';
export const PORTS_SCRIPT_PATH = '/usr/local/sbin/tmachine-ports';
export const PORTS_UNIT_PATH = '/etc/systemd/system/tmachine-ports.service';
export const PORTS_OPENRC_PATH = '/etc/init.d/tmachine-ports';

/** The chain jumped to first from DOCKER-USER (once the engine made it) and from INPUT. */
const JUMPS = [
  'for chain in DOCKER-USER INPUT; do',
  '  iptables -w -S "$chain" >/dev/null 2>&1 || continue',
  `  iptables -w -C "$chain" -j ${PORTS_CHAIN} 2>/dev/null || iptables -w -I "$chain" 1 -j ${PORTS_CHAIN}`,
  'done',
];

/** Run at boot: the saved rules back into a fresh chain, and the jumps to it. */
export function portsRestoreScript(): string {
  return [
    '#!/bin/sh',
    `# Written by tmachine: puts back the published ports \`swarm deploy --open-ports\` opened (saved in ${PORTS_RULES_PATH}).`,
    'set -e',
    `[ -f ${PORTS_RULES_PATH} ] && command -v iptables >/dev/null 2>&1 || exit 0`,
    `iptables -w -N ${PORTS_CHAIN} 2>/dev/null || iptables -w -F ${PORTS_CHAIN}`,
    `while read -r rule; do [ -z "$rule" ] || eval "iptables -w $rule"; done < ${PORTS_RULES_PATH}`,
    ...JUMPS,
    '',
  ].join('\n');
}

export function portsSystemdUnit(): string {
  return bootSystemdUnit({
    purpose: 'puts the published ports back after a reboot.',
    description: 'tmachine: the published ports swarm deploy --open-ports opened',
    ordering: ['# The engine makes DOCKER-USER when it starts; the rules go in after that.', 'After=docker.service tmachine-firewall.service'],
    exec: PORTS_SCRIPT_PATH,
  });
}

export function portsOpenrcScript(): string {
  return bootOpenrcScript({
    purpose: 'puts the published ports back after a reboot.',
    description: 'tmachine: the published ports swarm deploy --open-ports opened',
    depend: ['after docker tmachine-firewall'],
    starting: 'Restoring the published ports',
    exec: PORTS_SCRIPT_PATH,
  });
}

/** Writes a file only when its content differs; prints "changed" when it wrote. */
function installFile(file: string, content: string, mode: string): string[] {
  const marker = 'TMACHINE_PORTS_FILE';
  return [
    `tmp=$(mktemp) && cat > "$tmp" <<'${marker}'`,
    content.trimEnd(),
    marker,
    `if cmp -s "$tmp" ${file}; then rm -f "$tmp"; else mkdir -p ${file.slice(0, file.lastIndexOf('/'))} && install -m ${mode} "$tmp" ${file} && rm -f "$tmp" && changed=1; fi`,
  ];
}

/** Saves the chain's rules and makes sure the boot-time service puts them back. */
function persistLines(): string[] {
  return [
    `mkdir -p ${PORTS_RULES_PATH.slice(0, PORTS_RULES_PATH.lastIndexOf('/'))}`,
    `iptables -w -S ${PORTS_CHAIN} | grep -e '^-A ' > ${PORTS_RULES_PATH}.new || true`,
    `mv ${PORTS_RULES_PATH}.new ${PORTS_RULES_PATH}`,
    'changed=0',
    ...installFile(PORTS_SCRIPT_PATH, portsRestoreScript(), '755'),
    'if [ -d /run/systemd/system ]; then',
    ...installFile(PORTS_UNIT_PATH, portsSystemdUnit(), '644'),
    '  [ "$changed" = 0 ] || systemctl daemon-reload',
    '  systemctl is-enabled --quiet tmachine-ports.service 2>/dev/null || systemctl enable --quiet tmachine-ports.service',
    'elif command -v rc-update >/dev/null 2>&1; then',
    ...installFile(PORTS_OPENRC_PATH, portsOpenrcScript(), '755'),
    '  rc-update show default 2>/dev/null | grep -qw tmachine-ports || rc-update add tmachine-ports default >/dev/null',
    'fi',
  ];
}

function openScript(ports: PublishedPort[], cidr: string): string {
  const unique = [...new Map(ports.map((p) => [`${p.protocol}:${p.port}`, p])).values()];
  const lines = [
    'set -e',
    'command -v iptables >/dev/null 2>&1 || { echo "iptables is not installed" >&2; exit 1; }',
    `iptables -w -N ${PORTS_CHAIN} 2>/dev/null || true`,
    ...JUMPS,
  ];
  for (const p of unique) {
    const match = `-p ${p.protocol} -m conntrack --ctorigdstport ${p.port} --ctdir ORIGINAL`;
    // A port opened before from another range: its rules go first, then the range given now.
    lines.push(
      `iptables -w -S ${PORTS_CHAIN} | grep -e '--ctorigdstport ${p.port} ' | grep -e '-p ${p.protocol} ' | sed 's/^-A /-D /' | while read -r rule; do eval "iptables -w $rule"; done`,
      `iptables -w -A ${PORTS_CHAIN} ${match} -s ${cidr} -j RETURN`,
      `iptables -w -A ${PORTS_CHAIN} ${match} -j DROP`,
    );
  }
  lines.push(...persistLines());
  return lines.join('\n');
}

/** Opens the ports on every member's host firewall from `cidr` only. */
export async function openPublishedPorts(store: Store, members: Member[], ports: PublishedPort[], cidr: string): Promise<string[]> {
  checkCidr(cidr);
  if (ports.length === 0) return [];
  const script = shellQuote(openScript(ports, cidr));
  await Promise.all(
    members.map(async (m) => {
      const conn = await connectMachine(store, m.record);
      try {
        await conn.run(`if [ "$(id -u)" = 0 ]; then sh -c ${script}; else sudo -n sh -c ${script}; fi`, { what: 'opening the published ports' });
      } finally {
        conn.close();
      }
    }),
  );
  return members.map((m) => m.record.name).sort();
}

/**
 * Opens the ports in the cloud firewall of every member whose driver has one (`openPorts`),
 * from `cidr` only; drivers without (docker, generic, virtualbox) have the host firewall
 * alone. Members that share their cloud resources (one cluster's security group or rules)
 * share one firewall: the first of them opens the ports, the others then find them open and
 * only record the rules they use. Returns one line per cloud firewall.
 */
export async function openCloudPorts(store: Store, members: Member[], ports: PublishedPort[], cidr: string): Promise<string[]> {
  checkCidr(cidr);
  const wanted = [...new Map(ports.map((p) => [`${p.port}/${p.protocol}`, { port: p.port, protocol: p.protocol }])).values()];
  if (wanted.length === 0) return [];
  const firewalls = new Map<string, Member[]>();
  for (const m of members) {
    const shared = m.record.driver.resources.filter((r) => r.shared).map((r) => `${r.kind}:${r.id}`).sort();
    const key = shared.length > 0 ? JSON.stringify([m.record.driver.name, shared]) : `machine:${m.record.name}`;
    firewalls.set(key, [...(firewalls.get(key) ?? []), m]);
  }
  const lines = await Promise.all(
    [...firewalls.values()].map(async ([first, ...rest]) => {
      const lead = await driverOf(store, first!.record);
      if (!lead.openPorts) return undefined;
      const line = await lead.openPorts(wanted, cidr);
      await Promise.all(rest.map(async (m) => (await driverOf(store, m.record)).openPorts?.(wanted, cidr)));
      return line;
    }),
  );
  return lines.filter((l): l is string => l !== undefined);
}
