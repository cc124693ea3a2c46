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


/**
 * A generic machine in a Docker Machine store for a host tmachine made in another store, as
 * if docker-machine had made it: the same address, SSH login and key, the engine's TLS files
 * (the engine trusts them) and the CA and client certificate in certs/, where Docker
 * Machine kept its own. The test's stand-in for a host Docker Machine provisioned.
 */
export function writeDockerMachineCopy(root: string, fromStore: string, name: string, engine: Record<string, unknown> = {}): { address: string } {
  const dir = path.join(fromStore, 'machines', name);
  const src = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { ssh: { user: string; port: number; keyPath: string }; addresses: { public: string }; engine: { port: number } };
  const read = (file: string) => fs.readFileSync(path.join(dir, file));
  writeDockerMachineMachine(
    root,
    name,
    'generic',
    { IPAddress: src.addresses.public, SSHUser: src.ssh.user, SSHPort: src.ssh.port, EnginePort: src.engine.port, SSHKey: '' },
    { id_rsa: read(src.ssh.keyPath), 'ca.pem': read('ca.pem'), 'cert.pem': read('cert.pem'), 'key.pem': read('key.pem'), 'server.pem': read('server.pem'), 'server-key.pem': read('server-key.pem') },
    engine,
  );
  for (const file of ['ca.pem', 'ca-key.pem', 'cert.pem', 'key.pem']) fs.copyFileSync(path.join(fromStore, 'certs', file), path.join(root, 'certs', file));
  return { address: src.addresses.public };
}
