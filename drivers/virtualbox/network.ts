/** IPv4 arithmetic for the host-only network, and VirtualBox 7's allowed ranges. */
import fs from 'node:fs';
import { DriverError } from '../kit/index.js';

export interface Cidr {
  /** This computer's address on the network (what `hostonlyif ipconfig --ip` gets). */
  hostIp: string;
  prefix: number;
  mask: string;
  network: string;
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function prefixToMask(prefix: number): string {
  return intToIp(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

export function maskToPrefix(mask: string): number {
  const n = ipToInt(mask);
  let prefix = 0;
  while (prefix < 32 && (n & (0x80000000 >>> prefix)) !== 0) prefix++;
  return prefix;
}

export function inRange(ip: string, range: { network: string; prefix: number }): boolean {
  const mask = range.prefix === 0 ? 0 : (0xffffffff << (32 - range.prefix)) >>> 0;
  return ((ipToInt(ip) & mask) >>> 0) === ((ipToInt(range.network) & mask) >>> 0);
}

/** Parses --virtualbox-hostonly-cidr; like Docker Machine, it must name a host address, not the network. */
export function parseHostOnlyCidr(value: string): Cidr {
  const [ip, prefixText] = value.split('/');
  const prefix = Number(prefixText);
  let n: number;
  try {
    n = ipToInt(ip ?? '');
  } catch {
    throw new DriverError('invalid-input', `--virtualbox-hostonly-cidr "${value}" is not an IPv4 CIDR`, { hint: 'use an address with a prefix length, like 192.168.56.1/24' });
  }
  if (!Number.isInteger(prefix) || prefix < 8 || prefix > 29) {
    throw new DriverError('invalid-input', `--virtualbox-hostonly-cidr "${value}": the prefix length must be 8 to 29`, { hint: 'use a /24 like 192.168.56.1/24' });
  }
  const mask = prefixToMask(prefix);
  const network = intToIp((n & ipToInt(mask)) >>> 0);
  const broadcast = intToIp(((n & ipToInt(mask)) | (~ipToInt(mask) >>> 0)) >>> 0);
  if (ip === network || ip === broadcast) {
    throw new DriverError('invalid-input', `--virtualbox-hostonly-cidr "${value}" names the network, not a host address`, {
      hint: `give this computer's address on it, like ${intToIp(ipToInt(network) + 1)}/${prefix}`,
    });
  }
  return { hostIp: ip!, prefix, mask, network };
}

/**
 * The ranges VirtualBox 7 lets host-only networks use: 192.168.56.0/21 unless
 * /etc/vbox/networks.conf lists others ("* 10.0.0.0/8 192.168.0.0/16").
 */
export function allowedHostOnlyRanges(confPath = '/etc/vbox/networks.conf'): Array<{ network: string; prefix: number; text: string }> {
  let text: string | undefined;
  try {
    text = fs.readFileSync(confPath, 'utf8');
  } catch {
    text = undefined;
  }
  const ranges: Array<{ network: string; prefix: number; text: string }> = [];
  for (const line of (text ?? '').split(/\r?\n/)) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('*')) continue;
    for (const word of trimmed.slice(1).trim().split(/\s+/)) {
      const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(word);
      if (m) ranges.push({ network: m[1]!, prefix: Number(m[2]), text: word });
    }
  }
  return ranges.length > 0 ? ranges : [{ network: '192.168.56.0', prefix: 21, text: '192.168.56.0/21' }];
}

export function checkAllowedCidr(cidr: Cidr, given: string): void {
  const ranges = allowedHostOnlyRanges();
  const inside = ranges.some((r) => r.prefix <= cidr.prefix && inRange(cidr.network, r));
  if (!inside) {
    throw new DriverError('invalid-input', `--virtualbox-hostonly-cidr ${given} is outside the range VirtualBox 7 allows for host-only networks (${ranges.map((r) => r.text).join(', ')})`, {
      hint: 'choose a network inside it, like 192.168.56.1/24, or list your range in /etc/vbox/networks.conf',
    });
  }
}

/** Addresses tmachine hands to VMs on the host-only network: from .10 up, never this computer's. */
export function candidateAddresses(cidr: Cidr): string[] {
  const base = ipToInt(cidr.network);
  const size = 2 ** (32 - cidr.prefix);
  const out: string[] = [];
  for (let i = 10; i < size - 1; i++) {
    const ip = intToIp(base + i);
    if (ip !== cidr.hostIp) out.push(ip);
  }
  return out;
}
