/** The overlay MTU rules: reading the NIC MTU, the MTU to use, ingress, and the deploy warnings. */
import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { applySwarmMtu, ensureIngressMtu, MTU_OPTION, NIC_MTU_PROBE, overlayMtuFor, parseNicMtu, stackMtuWarnings } from '../../src/swarm/mtu.js';

// What NIC_MTU_PROBE prints on a GCE-like host (iproute2 6.1, Debian 12).
const probeOutput = (mtu: number) => `1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 10.203.7.10/24 brd 10.203.7.255 scope global eth0\\       valid_lft forever preferred_lft forever
3: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft forever preferred_lft forever
--links--
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
2: eth0@if45: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu ${mtu} qdisc noqueue state UP mode DEFAULT group default \\    link/ether 02:42:0a:cb:07:0a brd ff:ff:ff:ff:ff:ff link-netnsid 0
3: docker0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN mode DEFAULT group default \\    link/ether 02:42:5c:1e:3a:11 brd ff:ff:ff:ff:ff:ff
--route--
default via 10.203.7.1 dev eth0
`;

describe('NIC MTU', () => {
  it('is the MTU of the interface that holds the swarm address', () => {
    expect(parseNicMtu(probeOutput(1460), '10.203.7.10')).toBe(1460);
    expect(parseNicMtu(probeOutput(1460), '172.17.0.1')).toBe(1500);
  });

  it('falls back to the interface of the default route', () => {
    expect(parseNicMtu(probeOutput(1460))).toBe(1460);
    expect(parseNicMtu(probeOutput(1460), '192.0.2.1')).toBe(1460);
  });

  it('is unknown when the output has no such interface', () => {
    expect(parseNicMtu('--links--\n--route--\n')).toBeUndefined();
  });
});

describe('the overlay MTU', () => {
  it('is 50 below the smallest NIC MTU when that is below 1500', () => {
    expect(overlayMtuFor([1500, 1460, 1500])).toBe(1410);
  });
  it('is not set when every NIC takes 1500 or more', () => {
    expect(overlayMtuFor([1500, 9001])).toBeUndefined();
  });
  it('is the given one when the cluster file sets it', () => {
    expect(overlayMtuFor([1460], 1400)).toBe(1400);
  });
});

/** A swarm manager's networks and services, as much of the engine API as ensureIngressMtu uses. */
function engineWith(ingressOptions: Record<string, string> | undefined, services: unknown[] = []) {
  let networks: Array<{ Id: string; Name: string; Ingress: boolean; Driver: string; Options: Record<string, string>; IPAM: { Config: Array<{ Subnet: string; Gateway: string }> } }> = ingressOptions
    ? [{ Id: 'ing1', Name: 'ingress', Ingress: true, Driver: 'overlay', Options: ingressOptions, IPAM: { Config: [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }] } }]
    : [];
  const created: Array<Record<string, unknown>> = [];
  const engine = {
    listNetworks: async () => networks,
    getNetwork: (id: string) => ({
      inspect: async () => networks.find((n) => n.Id === id),
      remove: async () => void (networks = networks.filter((n) => n.Id !== id)),
    }),
    listServices: async () => services,
    createNetwork: async (spec: Record<string, unknown>) => {
      created.push(spec);
      networks.push({ Id: 'ing2', Name: String(spec['Name']), Ingress: true, Driver: 'overlay', Options: spec['Options'] as Record<string, string>, IPAM: { Config: [] } });
    },
  };
  return { docker: engine as unknown as Docker, created };
}

describe('the ingress network', () => {
  it('is made again with the MTU and the same subnet', async () => {
    const { docker, created } = engineWith({ 'com.docker.network.driver.overlay.vxlanid_list': '4096' });
    expect(await ensureIngressMtu(docker, 1410)).toBe('recreated');
    expect(created).toEqual([
      expect.objectContaining({ Name: 'ingress', Driver: 'overlay', Ingress: true, Options: { [MTU_OPTION]: '1410' }, IPAM: { Driver: 'default', Config: [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }] } }),
    ]);
  });

  it('is left alone when it has the MTU already', async () => {
    const { docker, created } = engineWith({ [MTU_OPTION]: '1410' });
    expect(await ensureIngressMtu(docker, 1410)).toBe('already');
    expect(created).toEqual([]);
  });

  it('is not touched while a service publishes through it, and the error says which', async () => {
    const { docker } = engineWith({}, [{ Spec: { Name: 'web' }, Endpoint: { Spec: { Ports: [{ PublishMode: 'ingress', PublishedPort: 80 }] } } }]);
    await expect(ensureIngressMtu(docker, 1410)).rejects.toThrow('services publish ports through it: web');
  });
});

describe('applySwarmMtu', () => {
  it('reads every node and sets ingress to the smallest NIC MTU minus 50', async () => {
    const { docker, created } = engineWith({});
    const asked: string[] = [];
    const node = (name: string, mtu: number) => ({ name, address: '10.203.7.10', run: async (cmd: string) => (asked.push(`${name}: ${cmd}`), probeOutput(mtu)) });
    const result = await applySwarmMtu(docker, [node('m1', 1500), node('w1', 1460)]);
    expect(result).toEqual({ nicMtu: 1460, overlayMtu: 1410, ingress: 'recreated' });
    expect(asked).toEqual([`m1: ${NIC_MTU_PROBE}`, `w1: ${NIC_MTU_PROBE}`]);
    expect(created).toHaveLength(1);
  });

  it('changes nothing on 1500-byte NICs', async () => {
    const { docker, created } = engineWith({});
    expect(await applySwarmMtu(docker, [{ name: 'm1', run: async () => probeOutput(1500) }])).toEqual({ nicMtu: 1500, ingress: 'not-needed' });
    expect(created).toEqual([]);
  });

  it('refuses a given MTU that VXLAN cannot fit', async () => {
    const { docker } = engineWith({});
    await expect(applySwarmMtu(docker, [{ name: 'm1', run: async () => probeOutput(1460) }], 1450)).rejects.toThrow('overlay MTU 1450 does not fit the nodes\' NIC MTU 1460');
  });
});

describe('swarm deploy warnings', () => {
  it('names an overlay network without a fitting MTU, and the default network', () => {
    const stack = `
services:
  web: { image: tmachine/busybox:test }
  db: { image: tmachine/busybox:test, networks: [back] }
networks:
  back: { driver: overlay }
  big: { driver_opts: { ${MTU_OPTION}: "1450" } }
  fits: { driver_opts: { ${MTU_OPTION}: "1410" } }
  outside: { external: true }
  local: { driver: bridge }
`;
    const warnings = stackMtuWarnings(stack, 'app', 1410);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/^stack app: its default network gets MTU 1500, but the nodes need 1410 or less/);
    expect(warnings[1]).toMatch(/^stack app: overlay network "back" has no com\.docker\.network\.driver\.mtu; the nodes need 1410 or less/);
    expect(warnings[2]).toMatch(/^stack app: overlay network "big" has com\.docker\.network\.driver\.mtu 1450, more than the 1410/);
  });

  it('says nothing when every network fits', () => {
    const stack = `
services:
  web: { image: x, networks: [default] }
networks:
  default: { driver_opts: { ${MTU_OPTION}: "1410" } }
`;
    expect(stackMtuWarnings(stack, 'app', 1410)).toEqual([]);
  });
});
