/**
 * Defect 3 of issue 13: the docker driver chose its network's subnet by asking only its own
 * engine, so a subnet that a second engine's bridge (or any route) already used on this
 * machine was taken again and SSH reached a stranger. Subnets are now chosen free in the
 * machine's routing table, as `ip route` shows it.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CANDIDATE_SUBNETS, ensureNetwork, parseIpRoutes, parseProcRoutes, subnetOverlapsRoute } from '../../drivers/docker/network.js';
import { describeE2E, prepareLab, type Lab } from '../support/lab.js';

describe('routes of this machine', () => {
  it('reads ip route lines of every type, and /proc/net/route as a fallback', () => {
    const routes = parseIpRoutes(
      ['default via 192.0.2.1 dev eth0', '10.77.0.0/24 dev br-1 proto kernel scope link src 10.77.0.1', 'blackhole 10.78.0.0/24', 'local 10.79.0.5 dev br-2 table local proto kernel scope host src 10.79.0.5'].join('\n'),
    );
    expect(routes.map((r) => r.device)).toEqual(['br-1', 'blackhole', 'br-2']);
    expect(subnetOverlapsRoute('10.77.0.0/24', routes)).toEqual({ device: 'br-1' });
    expect(subnetOverlapsRoute('10.78.0.0/16', routes)).toEqual({ device: 'blackhole' });
    expect(subnetOverlapsRoute('10.79.0.0/24', routes)).toEqual({ device: 'br-2' });
    expect(subnetOverlapsRoute('10.80.0.0/24', routes)).toBeUndefined();
    const proc = parseProcRoutes('Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nbr-x\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\neth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n');
    expect(subnetOverlapsRoute('10.77.0.0/24', proc)).toEqual({ device: 'br-x' });
    expect(proc).toHaveLength(1);
  });
});

describeE2E('docker driver network on a machine with other routes', () => {
  let lab: Lab;
  const id = Math.random().toString(36).slice(2, 6);
  const name = `tm-netroute-${id}`;
  let blocked: string | undefined;

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    if (blocked) execFileSync('ip', ['route', 'del', 'blackhole', blocked]);
    await lab?.docker.getNetwork(name).remove().catch(() => undefined);
  });

  it('skips a subnet this engine does not use but the routing table does (another engine, a VPN)', async () => {
    // The subnet tmachine would pick now, taken by a route its engine cannot see.
    const used = new Set((await lab.docker.listNetworks()).flatMap((n) => (n.IPAM?.Config ?? []).map((c) => c.Subnet)));
    blocked = CANDIDATE_SUBNETS.find((c) => !used.has(c) && !subnetOverlapsRoute(c));
    expect(blocked).toBeDefined();
    execFileSync('ip', ['route', 'add', 'blackhole', blocked!]);
    const network = await ensureNetwork(lab.docker, name, undefined, true);
    expect(network.subnet).not.toBe(blocked);
    expect(subnetOverlapsRoute(network.subnet, parseIpRoutes(execFileSync('ip', ['-o', '-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' })).filter((r) => r.device !== `br-${network.id.slice(0, 12)}`))).toBeUndefined();
    // A --docker-subnet that overlaps a route is refused in one line.
    await expect(ensureNetwork(lab.docker, `${name}-x`, blocked, true)).rejects.toThrow(`--docker-subnet ${blocked} overlaps a route of this machine (device blackhole)`);
  });
});
