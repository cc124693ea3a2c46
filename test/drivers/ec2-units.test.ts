/** The ec2 driver's pure parts: console host keys, security group rules, option parsing. */
import { describe, expect, it } from 'vitest';
import { hostKeysFromConsole, sha256Fingerprint } from '../../drivers/ec2/console.js';
import { definition } from '../../drivers/ec2/definition.js';
import { desiredRules, missingRules, PUBLISHED_MARK, publishedPortRules, replacedRules, toPermissions } from '../../drivers/ec2/firewall.js';
import { DriverError, parseOptions, resolveRawOptions } from '../../drivers/kit/index.js';
import { generateKeyPair } from '../../src/ssh/keys.js';

const ed25519 = generateKeyPair('a').publicKey.split(' ').slice(0, 2).join(' ');
const other = generateKeyPair('b').publicKey.split(' ').slice(0, 2).join(' ');

function consoleWith(keys: string[], fingerprints: string[], prefix = ''): string {
  return [
    '[    0.000000] Linux version 6.1.0-27-cloud-amd64',
    'Cloud-init v. 22.4.2 running',
    `${prefix}-----BEGIN SSH HOST KEY FINGERPRINTS-----`,
    ...fingerprints.map((f) => `${prefix}256 ${f} root@ip-10-0-0-5 (ED25519)`),
    `${prefix}-----END SSH HOST KEY FINGERPRINTS-----`,
    '-----BEGIN SSH HOST KEY KEYS-----',
    ...keys.map((k) => `${k} root@ip-10-0-0-5`),
    '-----END SSH HOST KEY KEYS-----',
    'Cloud-init v. 22.4.2 finished',
  ].join('\n');
}

describe('host keys from the console', () => {
  it('reads the key block, confirmed by the fingerprint block, with or without a line prefix', () => {
    const fp = sha256Fingerprint(ed25519.split(' ')[1]!);
    expect(hostKeysFromConsole(consoleWith([ed25519], [fp]))).toEqual([ed25519]);
    expect(hostKeysFromConsole(consoleWith([ed25519], [fp], 'ec2: '))).toEqual([ed25519]);
    expect(hostKeysFromConsole(consoleWith([ed25519], [fp], '<14>Dec  1 20:32:07 cloud-init: '))).toEqual([ed25519]);
  });

  it('drops a key the fingerprint block does not list, and answers undefined before the block exists', () => {
    const fp = sha256Fingerprint(ed25519.split(' ')[1]!);
    expect(hostKeysFromConsole(consoleWith([ed25519, other], [fp]))).toEqual([ed25519]);
    expect(hostKeysFromConsole(consoleWith([other], [fp]))).toBeUndefined();
    expect(hostKeysFromConsole('Cloud-init v. 22.4.2 running\n')).toBeUndefined();
  });

  it('takes the last block of a console that holds several boots', () => {
    const first = consoleWith([other], [sha256Fingerprint(other.split(' ')[1]!)]);
    const second = consoleWith([ed25519], [sha256Fingerprint(ed25519.split(' ')[1]!)]);
    expect(hostKeysFromConsole(`${first}\n${second}`)).toEqual([ed25519]);
  });
});

describe('security group rules', () => {
  it('opens 22 and 2376 from each source range and the swarm ports from the group itself', () => {
    const rules = desiredRules(['0.0.0.0/0'], [], undefined);
    expect(rules.map((r) => `${r.protocol}:${r.fromPort ?? ''}:${r.cidr ?? 'self'}`)).toEqual(['tcp:22:0.0.0.0/0', 'tcp:2376:0.0.0.0/0', 'tcp:2377:self', 'tcp:7946:self', 'udp:7946:self', 'udp:4789:self']);
  });

  it('follows the data path port, adds ESP only for encrypted overlays, and opens extra ports from the source ranges', () => {
    const rules = desiredRules(['203.0.113.0/24'], ['8080', '60000-60010/udp'], { name: 'prod', dataPathPort: 4790, encryptedOverlay: true });
    const shown = rules.map((r) => `${r.protocol}:${r.fromPort ?? ''}-${r.toPort ?? ''}:${r.cidr ?? 'self'}`);
    expect(shown).toContain('udp:4790-4790:self');
    expect(shown).not.toContain('udp:4789-4789:self');
    expect(shown).toContain('50:-:self');
    expect(shown).toContain('tcp:8080-8080:203.0.113.0/24');
    expect(shown).toContain('udp:60000-60010:203.0.113.0/24');
    expect(desiredRules(['203.0.113.0/24'], [], { name: 'prod' }).some((r) => r.protocol === '50')).toBe(false);
  });

  it('adds only the rules the group lacks', () => {
    const desired = desiredRules(['0.0.0.0/0'], [], undefined);
    const existing = toPermissions(desired.slice(0, 3), 'sg-1');
    expect(missingRules(desired, existing, 'sg-1')).toEqual(desired.slice(3));
    expect(missingRules(desired, toPermissions(desired, 'sg-1'), 'sg-1')).toEqual([]);
  });

  it('published ports (swarm deploy --open-ports): from one range; a new range replaces only the rules --open-ports added for those ports', () => {
    const before = [
      ...toPermissions(desiredRules(['198.51.100.0/24'], ['8080'], undefined), 'sg-1'),
      ...toPermissions(publishedPortRules([{ port: 8080, protocol: 'tcp' }, { port: 9090, protocol: 'udp' }], '198.51.100.0/24'), 'sg-1'),
    ];
    const wanted = publishedPortRules([{ port: 8080, protocol: 'tcp' }], '203.0.113.0/24');
    expect(wanted).toEqual([{ protocol: 'tcp', fromPort: 8080, toPort: 8080, cidr: '203.0.113.0/24', description: `${PUBLISHED_MARK} 8080/tcp` }]);
    // The --ec2-open-port rule and the other port stay; the old range of 8080 from --open-ports goes.
    expect(replacedRules(wanted, before).map((r) => `${r.protocol}:${r.fromPort}:${r.cidr}`)).toEqual(['tcp:8080:198.51.100.0/24']);
    expect(replacedRules(publishedPortRules([{ port: 8080, protocol: 'tcp' }], '198.51.100.0/24'), before)).toEqual([]);
    expect(missingRules(wanted, before, 'sg-1')).toEqual(wanted);
    // IPv6 ranges go out as Ipv6Ranges and are recognised there.
    const v6 = publishedPortRules([{ port: 443, protocol: 'tcp' }], '2001:db8::/32');
    expect(toPermissions(v6, 'sg-1')[0]).toMatchObject({ Ipv6Ranges: [{ CidrIpv6: '2001:db8::/32' }] });
    expect(missingRules(v6, toPermissions(v6, 'sg-1'), 'sg-1')).toEqual([]);
  });
});

describe('ec2 options', () => {
  const parse = (given: Record<string, unknown>) => parseOptions(definition.optionsSchema, resolveRawOptions(definition.flags, given), definition.flags);

  it("takes Docker Machine's --amazonec2-* spellings and its environment variables", () => {
    const saved = process.env['AWS_INSTANCE_TYPE'];
    process.env['AWS_INSTANCE_TYPE'] = 't3.medium,t3a.medium';
    try {
      const options = parse({ 'amazonec2-region': 'eu-west-1', 'amazonec2-root-size': '30', 'amazonec2-open-port': ['8000'] });
      expect(options.region).toBe('eu-west-1');
      expect(options.rootSize).toBe(30);
      expect(options.openPorts).toEqual(['8000']);
      expect(options.instanceTypes).toEqual(['t3.medium', 't3a.medium']);
    } finally {
      if (saved === undefined) delete process.env['AWS_INSTANCE_TYPE'];
      else process.env['AWS_INSTANCE_TYPE'] = saved;
    }
  });

  it('defaults to an encrypted gp3 root of 16 GiB, t3.small, and 0.0.0.0/0 for SSH and the engine', () => {
    const options = parse({});
    expect([options.volumeType, options.rootSize, options.instanceTypes, options.sourceCidrs]).toEqual(['gp3', 16, ['t3.small'], ['0.0.0.0/0']]);
  });

  it('refuses a bad value naming the flag', () => {
    const refusal = (given: Record<string, unknown>) => {
      try {
        parse(given);
      } catch (error) {
        return error as DriverError;
      }
      throw new Error('expected a refusal');
    };
    expect(refusal({ 'ec2-source-cidr': ['10.0.0.0'] }).message).toMatch(/^--ec2-source-cidr .*CIDR/);
    expect(refusal({ 'ec2-ami': 'debian' }).message).toMatch(/^--ec2-ami "debian": takes an image id/);
    expect(refusal({ 'ec2-open-port': ['http'] }).kind).toBe('invalid-input');
  });
});
