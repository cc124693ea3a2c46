/** A Docker Machine 0.16 store on disk, as docker-machine wrote it, and a checksum to prove it unchanged. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Every file of a directory tree with its SHA-256: equal before and after means unchanged. */
export function treeChecksum(dir: string): string {
  const hash = createHash('sha256');
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, entry.name);
      const stat = fs.statSync(p);
      hash.update(`${path.relative(dir, p)} ${stat.mode} ${stat.mtimeMs}\n`);
      if (entry.isDirectory()) walk(p);
      else hash.update(fs.readFileSync(p));
    }
  };
  walk(dir);
  return hash.digest('hex');
}

/** A machine as Docker Machine 0.16 wrote it (libmachine Host, ConfigVersion 3). */
export function writeDockerMachineMachine(
  root: string,
  name: string,
  driverName: string,
  driver: Record<string, unknown>,
  files: Record<string, string | Buffer>,
  engine: Record<string, unknown> = {},
): void {
  const dir = path.join(root, 'machines', name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.join(root, 'certs'), { recursive: true, mode: 0o700 });
  const host = {
    ConfigVersion: 3,
    Driver: { IPAddress: '', MachineName: name, SSHUser: 'docker', SSHPort: 22, SSHKeyPath: path.join(dir, 'id_rsa'), StorePath: root, SwarmMaster: false, SwarmHost: 'tcp://0.0.0.0:3376', SwarmDiscovery: '', ...driver },
    DriverName: driverName,
    HostOptions: {
      Driver: '',
      Memory: 0,
      Disk: 0,
      EngineOptions: { ArbitraryFlags: [], Dns: null, GraphDir: '', Env: [], Ipv6: false, InsecureRegistry: [], Labels: [], LogLevel: '', StorageDriver: '', SelinuxEnabled: false, TlsVerify: true, RegistryMirror: [], InstallURL: 'https://get.docker.com', ...engine },
      SwarmOptions: { IsSwarm: false, Address: '', Discovery: '', Agent: false, Master: false, Host: 'tcp://0.0.0.0:3376', Image: 'swarm:latest', Strategy: 'spread', Heartbeat: 0, Overcommit: 0, ArbitraryFlags: [], ArbitraryJoinFlags: [], Env: null, IsExperimental: false },
      AuthOptions: {
        CertDir: path.join(root, 'certs'),
        CaCertPath: path.join(root, 'certs', 'ca.pem'),
        CaPrivateKeyPath: path.join(root, 'certs', 'ca-key.pem'),
        CaCertRemotePath: '',
        ServerCertPath: path.join(dir, 'server.pem'),
        ServerKeyPath: path.join(dir, 'server-key.pem'),
        ClientKeyPath: path.join(root, 'certs', 'key.pem'),
        ServerCertRemotePath: '',
        ServerKeyRemotePath: '',
        ClientCertPath: path.join(root, 'certs', 'cert.pem'),
        ServerCertSANs: [],
        StorePath: dir,
      },
    },
    Name: name,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(host, null, 4));
  for (const [file, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), content, { mode: 0o600 });
}

