/**
 * The host firewall (SPEC §4): whichever of ufw, firewalld or iptables is in charge gets the
 * ports a swarm needs opened. Only ACCEPT rules are added; nothing is closed or flushed.
 *
 * iptables (also iptables-nft) gets a dedicated chain, TMACHINE-INPUT, jumped to from INPUT,
 * so our rules are easy to see (`iptables -S TMACHINE-INPUT`) and to remove, plus a oneshot
 * service that puts them back after a reboot. ufw and firewalld persist rules themselves.
 */
import type { Step } from '../src/steps.js';
import { type HostShell, type RemoteFile, filesToWrite, runAsRoot, sha256Hex, shellQuote, writeFilesAsRoot } from './os.js';

export interface FirewallContext extends HostShell {
  /** The engine's TLS port is engine.port (2376 unless moved). */
  engine?: { port?: number };
  /** Swarm's VXLAN port; `--data-path-port` moves it off 4789. */
  dataPathPort?: number;
  /** The SSH port tmachine uses, when it is not 22 (22 is always opened). */
  sshPort?: number;
}

export interface PortRule {
  proto: 'tcp' | 'udp';
  port: number;
}

export const FIREWALL_CHAIN = 'TMACHINE-INPUT';
export const FIREWALL_SCRIPT_PATH = '/usr/local/sbin/tmachine-firewall';
export const FIREWALL_UNIT_PATH = '/etc/systemd/system/tmachine-firewall.service';
export const FIREWALL_OPENRC_PATH = '/etc/init.d/tmachine-firewall';

type FirewallKind = 'ufw' | 'firewalld' | 'iptables' | 'none';

/** The ports to open, in a fixed order (the generated script's bytes depend on it). */
export function swarmPorts(context: Pick<FirewallContext, 'engine' | 'dataPathPort' | 'sshPort'>): PortRule[] {
  const rules: PortRule[] = [
    { proto: 'tcp', port: 22 },
    ...(context.sshPort && context.sshPort !== 22 ? [{ proto: 'tcp' as const, port: context.sshPort }] : []),
    { proto: 'tcp', port: context.engine?.port ?? 2376 },
    { proto: 'tcp', port: 2377 },
    { proto: 'tcp', port: 7946 },
    { proto: 'udp', port: 7946 },
    { proto: 'udp', port: context.dataPathPort ?? 4789 },
  ];
  return rules;
}

/** Prints which firewall is in charge: ufw (active), firewalld (running), iptables, or none. */
const DETECT = [
  'if command -v ufw >/dev/null 2>&1 && ufw status 2>/dev/null | grep -q "^Status: active"; then echo ufw',
  'elif command -v firewall-cmd >/dev/null 2>&1 && firewall-cmd --state >/dev/null 2>&1; then echo firewalld',
  'elif command -v iptables >/dev/null 2>&1 && iptables -w -S INPUT >/dev/null 2>&1; then echo iptables',
  'else echo none; fi',
].join('\n');

function asKind(text: string): FirewallKind {
  const kind = text.trim();
  return kind === 'ufw' || kind === 'firewalld' || kind === 'iptables' ? kind : 'none';
}

/**
 * The rules script: `apply` (default) adds what is missing, `check` lists what is missing and
 * exits 1. The same file runs at boot from tmachine-firewall.service. IPv6 gets the same rules
 * when ip6tables works on the host.
 */
export function iptablesScript(ports: PortRule[]): string {
  return `#!/bin/sh
# Written by tmachine: opens the ports a Docker swarm needs. Idempotent.
# Usage: tmachine-firewall [apply|check]   (check lists what is missing and exits 1)
mode=\${1:-apply}
missing=0
rules='${ports.map((p) => `${p.proto}:${p.port}`).join(' ')}'
fix() {
	if [ "$mode" = check ]; then echo "missing: $*"; missing=1; return 0; fi
	"$@" || { echo "failed: $*" >&2; exit 2; }
}
for ipt in iptables ip6tables; do
	command -v "$ipt" >/dev/null 2>&1 || continue
	"$ipt" -w -S INPUT >/dev/null 2>&1 || continue
	if ! "$ipt" -w -S ${FIREWALL_CHAIN} >/dev/null 2>&1; then
		fix "$ipt" -w -N ${FIREWALL_CHAIN}
		[ "$mode" = check ] && continue
	fi
	"$ipt" -w -C INPUT -j ${FIREWALL_CHAIN} 2>/dev/null || fix "$ipt" -w -I INPUT 1 -j ${FIREWALL_CHAIN}
	for rule in $rules; do
		proto=\${rule%%:*}
		port=\${rule#*:}
		"$ipt" -w -C ${FIREWALL_CHAIN} -p "$proto" --dport "$port" -j ACCEPT 2>/dev/null ||
			fix "$ipt" -w -A ${FIREWALL_CHAIN} -p "$proto" --dport "$port" -j ACCEPT
	done
done
exit $missing
`;
}

/** A systemd oneshot unit that runs one script at boot (the swarm ports', the published ports'). */
export function bootSystemdUnit(service: { purpose: string; description: string; ordering: string[]; exec: string }): string {
  return `# Written by tmachine: ${service.purpose}
[Unit]
Description=${service.description}
${service.ordering.join('\n')}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${service.exec}

[Install]
WantedBy=multi-user.target
`;
}

export function firewallSystemdUnit(): string {
  return bootSystemdUnit({
    purpose: "puts the swarm's firewall rules back after a reboot.",
    description: 'tmachine: open the ports a Docker swarm needs',
    ordering: [
      '# After whatever loads a saved ruleset (which may flush ours), before the engine starts.',
      'After=network-pre.target netfilter-persistent.service iptables.service ip6tables.service nftables.service',
      'Before=network.target docker.service',
      'Wants=network-pre.target',
    ],
    exec: FIREWALL_SCRIPT_PATH,
  });
}

/** An OpenRC service that runs one script at boot (the swarm ports', the published ports'). */
export function bootOpenrcScript(service: { purpose: string; description: string; depend: string[]; starting: string; exec: string }): string {
  return `#!/sbin/openrc-run
# Written by tmachine: ${service.purpose}
description="${service.description}"

depend() {
${service.depend.map((line) => `\t${line}`).join('\n')}
}

start() {
	ebegin "${service.starting}"
	${service.exec}
	eend $?
}
`;
}

export function firewallOpenrcScript(): string {
  return bootOpenrcScript({
    purpose: "puts the swarm's firewall rules back after a reboot.",
    description: 'tmachine: open the ports a Docker swarm needs',
    depend: ['after iptables ip6tables', 'before docker'],
    starting: 'Opening the swarm ports',
    exec: FIREWALL_SCRIPT_PATH,
  });
}

function persistenceFiles(context: FirewallContext): RemoteFile[] {
  const script = { path: FIREWALL_SCRIPT_PATH, content: iptablesScript(swarmPorts(context)), mode: 0o755 };
  return context.os.init === 'openrc'
    ? [script, { path: FIREWALL_OPENRC_PATH, content: firewallOpenrcScript(), mode: 0o755 }]
    : [script, { path: FIREWALL_UNIT_PATH, content: firewallSystemdUnit(), mode: 0o644 }];
}

function enableCommand(context: FirewallContext): string {
  return context.os.init === 'openrc'
    ? 'rc-update add tmachine-firewall default >/dev/null'
    : 'systemctl daemon-reload && systemctl enable --quiet tmachine-firewall.service';
}

function enabledCheck(context: FirewallContext): string {
  return context.os.init === 'openrc'
    ? 'rc-update show default 2>/dev/null | grep -qw tmachine-firewall'
    : 'systemctl is-enabled --quiet tmachine-firewall.service';
}

const ufwRule = (p: PortRule) => `${p.port}/${p.proto}`;

/**
 * One round trip that says which firewall is in charge and what it lacks: "kind=X" first, then
 * one "missing: ..." line per missing rule (or outdated boot-time file).
 */
function inspectScript(context: FirewallContext): string {
  const ports = swarmPorts(context);
  const fileChecks = persistenceFiles(context).map(
    (f) => `[ "$(sha256sum < ${f.path} 2>/dev/null | cut -c1-64) $(stat -c %a ${f.path} 2>/dev/null)" = "${sha256Hex(f.content)} ${f.mode.toString(8)}" ] || echo "missing: up-to-date ${f.path}"`,
  );
  return [
    `kind=$(${DETECT})`,
    'echo "kind=$kind"',
    'case $kind in',
    'ufw)',
    `  added=$(ufw show added 2>/dev/null)`,
    ...ports.map((p) => `  printf '%s\\n' "$added" | grep -qx "ufw allow ${ufwRule(p)}" || echo "missing: ufw allow ${ufwRule(p)}"`),
    '  ;;',
    'firewalld)',
    '  runtime=" $(firewall-cmd --list-ports) "; permanent=" $(firewall-cmd --permanent --list-ports) "',
    ...ports.map((p) => `  case "$runtime" in *" ${ufwRule(p)} "*) ;; *) echo "missing: ${ufwRule(p)} (runtime)";; esac; case "$permanent" in *" ${ufwRule(p)} "*) ;; *) echo "missing: ${ufwRule(p)} (permanent)";; esac`),
    '  ;;',
    'iptables)',
    "  sh -s check <<'TMACHINE_RULES'",
    iptablesScript(ports).trimEnd(),
    'TMACHINE_RULES',
    ...fileChecks.map((c) => `  ${c}`),
    `  ${enabledCheck(context)} || echo "missing: boot-time service enabled"`,
    '  ;;',
    'esac',
    'exit 0',
  ].join('\n');
}

interface FirewallState {
  kind: FirewallKind;
  missing: string[];
}

async function inspectFirewall(context: FirewallContext): Promise<FirewallState> {
  const out = await runAsRoot(context, inspectScript(context), 'inspecting the firewall');
  const lines = out.split('\n');
  const kind = asKind((lines.find((l) => l.startsWith('kind=')) ?? '').slice('kind='.length));
  return { kind, missing: lines.filter((l) => l.startsWith('missing: ')).map((l) => l.slice('missing: '.length)) };
}

/** The firewall step: needsRun() is true only when a rule (or its boot-time persistence) is missing. */
export function firewallStep<C extends FirewallContext>(): Step<C> {
  return {
    id: 'firewall',
    title: 'open the swarm ports in the host firewall',
    async needsRun(context) {
      return (await inspectFirewall(context)).missing.length > 0;
    },
    async run(context, report) {
      const { kind, missing } = await inspectFirewall(context);
      const ports = swarmPorts(context);
      report(kind === 'none' ? 'no active firewall' : `${kind}: ${missing.join(', ')}`);
      switch (kind) {
        case 'none':
          return;
        case 'ufw':
          await runAsRoot(context, ports.map((p) => `ufw allow ${shellQuote(ufwRule(p))} >/dev/null`).join(' && '), 'opening ports in ufw');
          return;
        case 'firewalld': {
          const adds = ports.flatMap((p) => [`firewall-cmd --add-port=${ufwRule(p)} >/dev/null`, `firewall-cmd --permanent --add-port=${ufwRule(p)} >/dev/null`]);
          await runAsRoot(context, adds.join(' && '), 'opening ports in firewalld');
          return;
        }
        case 'iptables': {
          await writeFilesAsRoot(context, await filesToWrite(context, persistenceFiles(context)));
          await runAsRoot(context, `${FIREWALL_SCRIPT_PATH} apply && ${enableCommand(context)}`, 'adding the iptables rules');
          return;
        }
      }
    },
  };
}
