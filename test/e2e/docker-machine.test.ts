/**
 * Issue 18's acceptance on real hosts (docker driver): the course notes' walkthrough with
 * `tmachine` in place of `docker-machine`, a docker context exported and imported into an
 * empty DOCKER_CONFIG, and a Docker Machine 0.16 store whose generic machine is a real test
 * host with an engine (made by tmachine in a separate store), imported and used.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeE2E, labSession, ok, prepareLab, type Lab } from '../support/lab.js';
import { treeChecksum, writeDockerMachineCopy, writeDockerMachineMachine } from '../support/docker-machine-store.js';

describeE2E('Docker Machine users on real hosts', () => {
  let lab: Lab;
  const s = labSession('dm');
  const other = labSession('dmsrc');
  const third = labSession('dmre');
  const manager1 = s.name('manager1');
  const worker1 = s.name('worker1');
  const worker2 = s.name('worker2');
  const legacy = other.name('legacy');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-dm-e2e-'));
  // Subnets of this helper's range (10.205.0.0/16), a different /24 per run.
  const octet = 10 + Math.floor(Math.random() * 200);
  const subnet = (n: number) => `10.205.${octet + n}.0/24`;

  beforeAll(async () => {
    lab = await prepareLab();
  });
  afterAll(async () => {
    if (lab) {
      await s.cleanup(lab.docker);
      await other.cleanup(lab.docker);
      await third.cleanup(lab.docker);
    }
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("the course notes' walkthrough: three machines, swarm init and joins through ssh, docker node ls through env", async () => {
    // One create, three names, Docker Machine's flag syntax with the name last.
    ok(
      await s.cli(['create', '-d', 'docker', '--docker-subnet', subnet(0), '--engine-bundle', lab.bundlePath, '--engine-label', 'course=notes', manager1, worker1, worker2]),
    );
    const out = s.shell(
      `
tmachine ssh ${manager1} "sudo docker swarm init --advertise-addr $(tmachine ip ${manager1})" >/dev/null
TOKEN=$(tmachine ssh ${manager1} "sudo docker swarm join-token worker -q")
for w in ${worker1} ${worker2}; do
  tmachine ssh $w "sudo docker swarm join --token $TOKEN $(tmachine inspect --format '{{.Driver.IPAddress}}' ${manager1}):2377" >/dev/null
done
eval "$(tmachine env ${manager1})"
docker node ls --format '{{.Hostname}} {{.Status}}' | sort
echo "labels: $(docker info --format '{{json .Labels}}')"
# config prints one flag a line, paths quoted as docker-machine did: eval reads the quotes.
echo "config: $(eval "docker $(tmachine config ${manager1} | tr '\\n' ' ') info --format '{{.Swarm.Nodes}}'")"
`,
    );
    const lines = out.trim().split('\n');
    expect(lines.filter((l) => / Ready$/.test(l))).toHaveLength(3);
    expect(out).toContain('course=notes');
    expect(out).toMatch(/config: 3$/m);
    expect(ok(await s.cli(['inspect', '--format', '{{.Driver.IPAddress}}', manager1])).stdout.trim()).toBe(ok(await s.cli(['ip', manager1])).stdout.trim());
    const ls = ok(await s.cli(['ls', '--filter', 'label=course=notes', '--format', '{{.Name}} {{.State}} {{.DockerVersion}}'])).stdout.trim().split('\n');
    expect(ls).toHaveLength(3);
    for (const line of ls) expect(line).toContain(` Running v${lab.bundleVersion}`);
  });

  it('a context exported with tmachine context --export reaches the engine after docker context import into an empty DOCKER_CONFIG', async () => {
    const file = path.join(work, 'manager1.dockercontext');
    ok(await s.cli(['context', manager1, '--export', file]));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const config = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-docker-config-'));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: config };
      for (const key of ['DOCKER_HOST', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_CONTEXT']) delete env[key];
      execFileSync('docker', ['context', 'import', 'shared', file], { env, encoding: 'utf8' });
      const state = execFileSync('docker', ['--context', 'shared', 'info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'], { env, encoding: 'utf8' });
      expect(state.trim()).toBe('active true');
    } finally {
      fs.rmSync(config, { recursive: true, force: true });
    }
  });

  it('imports a Docker Machine 0.16 store: the generic machine works (ssh, env + docker info, ls), the store is unchanged', async () => {
    // The host: a real test host with an engine, made by tmachine in another store.
    ok(await other.cli(['create', '-d', 'docker', '--docker-subnet', subnet(1), '--engine-bundle', lab.bundlePath, legacy]));
    const dm = path.join(work, 'docker-machine-store');
    const src = writeDockerMachineCopy(dm, other.store, legacy);
    // A DigitalOcean machine: a driver tmachine does not have (one line, skipped).
    writeDockerMachineMachine(dm, 'do-legacy', 'digitalocean', { IPAddress: '127.0.0.3' }, { id_rsa: 'k' });
    const before = treeChecksum(dm);

    const imported = ok(await s.cli(['import'], { env: { MACHINE_STORAGE_PATH: dm } }));
    expect(imported.stderr).toMatch(new RegExp(`imported ${legacy} \\(generic, ${src.address.replace(/\./g, '\\.')}\\)`));
    expect(imported.stderr).toMatch(/skipped do-legacy: driver "digitalocean" has no tmachine equivalent/);

    expect(ok(await s.cli(['ssh', legacy, 'hostname'])).stdout.trim()).toBeTruthy();
    const info = s.shell(`eval "$(tmachine env ${legacy})"; docker info --format '{{.ServerVersion}}'`);
    expect(info.trim()).toContain(lab.bundleVersion);
    const row = ok(await s.cli(['ls', '--filter', `name=^${legacy}$`, '--format', '{{.Name}} {{.DriverName}} {{.State}} {{.DockerVersion}}'])).stdout.trim();
    expect(row.startsWith(`${legacy} generic Running v${lab.bundleVersion}`), row).toBe(true);
    expect(treeChecksum(dm)).toBe(before);
  });

  it('tmachine swarm context --export: a context for a healthy manager, importable elsewhere', async () => {
    ok(await other.cli(['swarm', 'bootstrap', '--manager', legacy]));
    const file = path.join(work, 'swarm.dockercontext');
    const made = ok(await other.cli(['swarm', 'context', '--export', file, '--context-name', 'team-swarm']));
    expect(made.stderr).toContain(`(manager ${legacy})`);
    const config = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-docker-config-'));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: config };
      for (const key of ['DOCKER_HOST', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_CONTEXT']) delete env[key];
      execFileSync('docker', ['context', 'import', 'team-swarm', file], { env, encoding: 'utf8' });
      const nodes = execFileSync('docker', ['--context', 'team-swarm', 'node', 'ls', '--format', '{{.Hostname}} {{.ManagerStatus}}'], { env, encoding: 'utf8' });
      expect(nodes.trim()).toMatch(/ Leader$/);
    } finally {
      fs.rmSync(config, { recursive: true, force: true });
    }
  });

  it('import --regenerate-certs: the engine then trusts the new store, not the certificates Docker Machine had', async () => {
    const dm = path.join(work, 'docker-machine-store');
    const before = treeChecksum(dm);
    const r = ok(await third.cli(['import', '--regenerate-certs', legacy], { env: { MACHINE_STORAGE_PATH: dm } }));
    expect(r.stderr).toMatch(new RegExp(`imported ${legacy} \\(generic`));
    const info = third.shell(`eval "$(tmachine env ${legacy})"; docker info --format '{{.ServerVersion}}'`);
    expect(info.trim()).toContain(lab.bundleVersion);
    // The certificates the Docker Machine store holds no longer open the engine.
    const stale = s.shell(`eval "$(tmachine env ${legacy})"; docker info --format '{{.ServerVersion}}' 2>&1 || true`);
    expect(stale).toMatch(/certificate|tls|x509/i);
    expect(treeChecksum(dm)).toBe(before);
  });
});
