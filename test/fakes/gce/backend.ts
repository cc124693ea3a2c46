/**
 * What backs a fake instance: a real host (test/support/cloud-host.ts) in the e2e suites, or
 * a stand-in on 127.0.0.1 in the protocol contract tests. The fake reports only the
 * address the backend gives it, for the internal and the external address alike.
 */

/** What the guest applies at first boot, built by the fake from the instance request. */
export interface GuestSetup {
  instance: string;
  zone: string;
  hostname: string;
  /** From the `ssh-keys` metadata ("USER:KEY COMMENT" lines). */
  sshKeys: Array<{ user: string; key: string }>;
  /** All metadata items, as sent. */
  metadata: Record<string, string>;
  /** The instance will never answer SSH (fault switch). */
  sshNeverAnswers: boolean;
}

export interface BackedHost {
  /** The host's address on its test network: networkIP and natIP. */
  ip: string;
  /** The host's own SSH public keys (OpenSSH lines), once it has booted. */
  hostKeys(): Promise<string[]>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Hard reset (instances.reset): power off and on again. */
  reset(): Promise<void>;
  remove(): Promise<void>;
}

export interface InstanceBackend {
  /** Starts the host and resolves once it has booted (cloud-init applied). */
  launch(setup: GuestSetup): Promise<BackedHost>;
  /** MTU of the network the hosts sit on (what the fake's networks report). */
  mtu(): number;
}

/** Parses the `ssh-keys` metadata value: one `USER:KEY [COMMENT]` per line. */
export function parseSshKeys(value: string | undefined): Array<{ user: string; key: string }> {
  const out: Array<{ user: string; key: string }> = [];
  for (const line of (value ?? '').split('\n')) {
    const match = /^([a-z_][a-z0-9_.-]*):(ssh-[a-z0-9-]+|ecdsa-[a-z0-9-]+)\s+(\S+)/.exec(line.trim());
    if (match) out.push({ user: match[1]!, key: `${match[2]!} ${match[3]!}` });
  }
  return out;
}
