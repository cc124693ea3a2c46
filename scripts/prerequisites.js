// What the test suite needs from Debian, in one list: `npm test` refuses to start without
// it (one line with the apt-get command) and .ci/run installs exactly these packages.
// Run directly, it prints the missing package names, space-separated.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** [command, Debian package]: the command on PATH (or in an sbin) means the package is there. */
export const PREREQUISITES = [
  ['dockerd', 'docker.io'],
  ['docker', 'docker.io'],
  ['debootstrap', 'debootstrap'],
  ['sshd', 'openssh-server'],
  ['ssh-keygen', 'openssh-client'],
  ['iptables', 'iptables'],
  ['openssl', 'openssl'],
  // NoCloud cidata ISOs for the cloud-host test support (osirrox extracts, xorriso makes);
  // the virtualbox tests read tmachine's own seed ISO back with xorriso.
  ['osirrox', 'xorriso'],
];

function onPath(bin) {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'];
  return dirs.some((d) => d && existsSync(path.join(d, bin)));
}

export function missingPackages() {
  return [...new Set(PREREQUISITES.filter(([bin]) => !onPath(bin)).map(([, pkg]) => pkg))];
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(missingPackages().join(' ') + '\n');
}
