/**
 * What backs a fake instance: a real test host (cloud-host.ts) or nothing (protocol-only
 * contract tests). The fake owns the EC2 view (ids, states, addresses as the API reports
 * them); the backend owns the host.
 */

export interface LaunchRequest {
  instanceId: string;
  /** Address the fake allocated in the instance's subnet (the host's address on the test network). */
  ip: string;
  /** cloud-init's hostname (EC2's resource name, ip-10-0-0-5). */
  hostname: string;
  /** Login user of the image ("admin" on Debian's images). */
  user: string;
  /** The key pair's public key (OpenSSH line), authorised for `user`. */
  authorizedKey?: string;
  /** Decoded user data (cloud-config or script), applied by cloud-init. */
  userData?: string;
  /** The instance never answers SSH (fault). */
  blockSsh: boolean;
}

export interface BackingHost {
  /** True once sshd answers (the instance becomes `running`). */
  answersSsh(): Promise<boolean>;
  /** cloud-init's host key block as it appears on the console, or '' before it exists. */
  consoleText(): Promise<string>;
  stop(): Promise<void>;
  /** Starts a stopped host on a new address (a stopped instance gives its address up). */
  start(ip: string): Promise<void>;
  kill(): Promise<void>;
  reboot(): Promise<void>;
  remove(): Promise<void>;
}

export interface InstanceBackend {
  /** The test network the hosts join: its subnet is the VPC's CIDR. */
  readonly subnet: string;
  launch(request: LaunchRequest): Promise<BackingHost>;
  /** Removes every host this backend made (test clean-up). */
  close(): Promise<void>;
}
