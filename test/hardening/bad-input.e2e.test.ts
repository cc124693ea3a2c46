/**
 * Bad input through the CLI, table-driven: commands, flags, names, counts, addresses, ports,
 * CIDRs, cluster files (driver options too, at their line), stack and bundle files, key files,
 * a store of a newer schema, the flags of every driver (Docker Machine's spellings too), and
 * missing cloud credentials. Each case: exactly one `Error:` line on stderr holding the
 * expected words, non-zero exit, no stack trace, the store byte-for-byte unchanged (the whole
 * tree hashed before and after), no container or volume left on the lab engine, and nothing
 * left in the cloud fakes (EC2 instances, key pairs, security groups; GCE instances and
 * firewall rules; VirtualBox VMs, media and host-only interfaces). The cloud cases point the
 * drivers at those fakes, so a case that wrongly got past its check would show there.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { Store } from '../../src/store/store.js';
import { STORE_SCHEMA_VERSION } from '../../src/store/machine-record.js';
import { generateKeyPair } from '../../src/ssh/keys.js';
import { isolatedAwsEnv } from '../support/aws-env.js';
import { runCli, tempStore } from '../support/cli.js';
import { CACHE_DIR, describeE2E, prepareLab, type Lab } from '../support/lab.js';
import { FakeEc2 } from '../fakes/ec2/server.js';
import { GceFake } from '../fakes/gce/server.js';
import { stubBackend } from '../fakes/gce/stub-backend.js';
import { startFakeVBox, type FakeVBox } from '../fakes/vboxmanage/backend.js';
import { errorLines, resourcesOf, STACK_TRACE, treeHash } from './support.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-badinput-'));
const file = (name: string, content: string | Buffer) => {
  const full = path.join(work, name);
  fs.writeFileSync(full, content);
  return full;
};

/** Stand for the fakes' endpoints in a case's arguments (known once they listen). */
const EC2_ENDPOINT = '<ec2-fake>';
const GCE_ENDPOINT = '<gce-fake>';

interface Case {
  args: string[];
  /** Words the one error line must hold. */
  expect: RegExp;
  /** Run against the store of a newer tmachine instead of the shared one. */
  store?: 'newer';
  /** The cloud API says what is wrong (every other case is refused before any API call). */
  api?: true;
  /** More environment: what a cloud case's credentials are (or are not). */
  env?: Record<string, string | undefined> | (() => Record<string, string | undefined>);
}

describeE2E('bad input through the CLI', () => {
  vi.setConfig({ testTimeout: 60_000 });
  let lab: Lab;
  const store = tempStore('tmachine-hbad-');
  const newer = tempStore('tmachine-hbadnew-');
  const prefix = `hbad${Math.random().toString(36).slice(2, 6)}`;
  const network = `tm-${prefix}`;
  const dname = `${prefix}d1`;
  let ec2: FakeEc2;
  let gce: GceFake;
  let vbox: FakeVBox;

  // Cloud credentials: the fakes' for the cloud cases, none at all for the "missing" ones.
  const noHome = path.join(work, 'no-home');
  fs.mkdirSync(noHome);
  const aws = isolatedAwsEnv(noHome, { accessKeyId: 'AKIAHBADINPUT0000001', secretAccessKey: 'bad-input-secret-key' });
  const noAws = isolatedAwsEnv(noHome);
  const gceToken = { GOOGLE_OAUTH_ACCESS_TOKEN: 'ya29.bad-input-token' };
  const noGce = { GOOGLE_OAUTH_ACCESS_TOKEN: undefined, GOOGLE_APPLICATION_CREDENTIALS: undefined, CLOUDSDK_CONFIG: undefined, METADATA_SERVER_DETECTION: undefined, GOOGLE_CLOUD_PROJECT: undefined, HOME: noHome };
  const ec2Create = (...flags: string[]): Case['args'] => ['create', '--driver', 'ec2', '--ec2-endpoint', EC2_ENDPOINT, ...flags, `${prefix}e1`];
  const amazonCreate = (...flags: string[]): Case['args'] => ['create', '--driver', 'amazonec2', '--amazonec2-endpoint', EC2_ENDPOINT, ...flags, `${prefix}e1`];
  const gceCreate = (...flags: string[]): Case['args'] => ['create', '--driver', 'gce', '--gce-project', 'p', '--gce-zone', 'europe-west1-b', '--gce-endpoint', GCE_ENDPOINT, ...flags, `${prefix}g1`];
  const googleCreate = (...flags: string[]): Case['args'] => ['create', '--driver', 'google', '--google-project', 'p', '--gce-endpoint', GCE_ENDPOINT, ...flags, `${prefix}g1`];
  const vboxCreate = (...flags: string[]): Case['args'] => ['create', '--driver', 'virtualbox', ...flags, `${prefix}v1`];
  const vboxEnv = () => vbox.env();

  // Files the cases point at.
  const missing = path.join(work, 'does-not-exist');
  const goodKey = file('good_ed25519', generateKeyPair('bad-input').privateKey);
  fs.chmodSync(goodKey, 0o600);
  const cluster = (name: string, text: string) => file(`${name}.yml`, text);
  const notYaml = cluster('not-yaml', 'name: [unclosed\nmanagers: {\n');
  const tabs = cluster('tabs', 'name: t\nmanagers:\n\t- 1\n');
  const empty = cluster('empty', '');
  const binary = file('binary.yml', Buffer.from([0, 1, 2, 3, 255, 254, 0, 10, 0]));
  const unknownDriver = cluster('unknown-driver', 'name: u\ndriver: { name: nosuchdriver }\nmanagers: 1\n');
  const unknownField = cluster('unknown-field', 'name: u\ndriver: { name: docker }\nmanagers: 1\ncolour: blue\n');
  const wrongType = cluster('wrong-type', 'name: u\ndriver: { name: docker }\nmanagers: three\n');
  const duplicate = cluster('duplicate', 'name: u\ndriver: { name: docker }\nmanagers: 1\nnodes:\n  - name: db1\n    driver: { name: generic, address: 10.207.99.10 }\n    role: worker\n  - name: db1\n    driver: { name: generic, address: 10.207.99.11 }\n    role: worker\n');
  const evenManagers = cluster('even', 'name: u\ndriver: { name: docker }\nmanagers: 2\n');
  const noName = cluster('no-name', 'driver: { name: docker }\nmanagers: 1\n');
  const badName = cluster('bad-name', 'name: "bad name!"\ndriver: { name: docker }\nmanagers: 1\n');
  const negativeWorkers = cluster('neg-workers', 'name: u\ndriver: { name: docker }\nmanagers: 1\nworkers:\n  - count: -2\n');
  const ec2Region = cluster('ec2-region', 'name: u\ndriver:\n  name: ec2\n  region: 12\nmanagers: 1\n');
  const ec2Unknown = cluster('ec2-unknown', 'name: u\ndriver:\n  name: ec2\n  region: eu-west-1\n  colour: blue\nmanagers: 1\n');
  const ec2Cidr = cluster('ec2-cidr', 'name: u\ndriver:\n  name: amazonec2\n  source-cidr:\n    - 198.51.100.0/24\n    - 198.51.100.7\nmanagers: 1\n');
  const ec2CidrFull = cluster('ec2-cidr-full', 'name: u\ndriver: { name: ec2, ec2-source-cidr: everywhere }\nmanagers: 1\n');
  const gceGroup = cluster('gce-group', 'name: u\ndriver: { name: gce, project: p }\nmanagers: 1\nworkers:\n  - count: 2\n    driver: { disk-size: 5 }\n');
  const gceType = cluster('gce-type', 'name: u\ndriver: { name: gce, project: p, disk-size: big }\nmanagers: 1\n');
  const genericPort = cluster('generic-port', 'name: u\ndriver: { name: docker }\nmanagers: 1\nnodes:\n  - name: db1\n    role: worker\n    driver: { name: generic, address: 10.207.99.10, ssh-port: 70000 }\n');
  const vboxMemory = cluster('vbox-memory', 'name: u\ndriver:\n  name: virtualbox\n  memory: 100\nmanagers: 1\n');
  const dockerPrivileged = cluster('docker-privileged', 'name: u\ndriver: { name: docker, privileged: sometimes }\nmanagers: 1\n');
  const notATarball = file('bundle.tgz', 'this is not a tarball\n');
  const stackFile = file('stack.yml', 'version: "3.8"\nservices: {}\n');
  const ca = file('registry-ca.crt', 'not a certificate\n');
  const textKey = file('text-key', 'this is not a key\n');
  const publicKey = file('id_pub_only', generateKeyPair('bad-input').publicKey + '\n');
  const protectedKey = path.join(work, 'id_protected');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'a passphrase', '-f', protectedKey]);

  const cases: Case[] = [
    // Commands and flags.
    { args: ['nosuchcommand'], expect: /command nosuchcommand not found/ },
    { args: ['create', '--nosuchflag', 'x'], expect: /Nonexistent flag: --nosuchflag/ },
    { args: ['create'], expect: /create needs a machine name/ },
    { args: ['ls', '--format'], expect: /--format expects a value/ },
    { args: ['ssh'], expect: /Missing 1 required arg/ },
    { args: ['scp', 'onlyone'], expect: /Missing 1 required arg/ },
    { args: ['create', '--driver', 'nosuchdriver', 'x1'], expect: /unknown driver "nosuchdriver" \(built-in drivers: docker, ec2, gce, generic, virtualbox/ },
    // Machines that do not exist.
    { args: ['upgrade', 'nope'], expect: /upgrade needs --engine-bundle or --engine-version/ },
    ...['inspect', 'ip', 'url', 'config', 'env', 'status', 'start', 'stop', 'kill', 'restart', 'provision'].map((command) => ({ args: [command, 'nope'], expect: /machine "nope" does not exist/ })),
    { args: ['ssh', 'nope', '--', 'true'], expect: /machine "nope" does not exist/ },
    { args: ['regenerate-certs', '-f', 'nope'], expect: /machine "nope" does not exist/ },
    { args: ['scp', 'nope:/etc/hostname', path.join(work, 'x')], expect: /machine "nope" does not exist/ },
    // Names.
    ...['bad_name', 'a b', 'ünïcode', '.dot', 'x'.repeat(64), 'semi;colon', 'slash/name'].map((name) => ({
      args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', name],
      expect: new RegExp(`invalid machine name "${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"`),
    })),
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', 'box'], expect: /machine "box" already exists/ },
    // Addresses, ports, users (generic driver).
    { args: ['create', '--driver', 'generic', 'g1'], expect: /--generic-ip-address is required/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', 'not an address!', 'g1'], expect: /--generic-ip-address "not an address!": not an IP address or host name/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-port', '0', 'g1'], expect: /a port from 1 to 65535/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-port', 'abc', 'g1'], expect: /--generic-ssh-port takes a number, not "abc"/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-port', '2.5', 'g1'], expect: /--generic-ssh-port "2\.5": a whole number/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-user', 'bad user', 'g1'], expect: /not a user name/ },
    // Key files.
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', missing, 'g1'], expect: /SSH key .*does-not-exist does not exist/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', textKey, 'g1'], expect: /text-key is not a private key tmachine can read/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', publicKey, 'g1'], expect: /id_pub_only is a public key/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', protectedKey, 'g1'], expect: /id_protected is protected by a passphrase/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-key', work, 'g1'], expect: /cannot be read \(not a file\)/ },
    // Docker driver flags.
    { args: ['create', '--driver', 'docker', '--docker-subnet', 'not-a-cidr', dname], expect: /an IPv4 CIDR such as 10\.77\.0\.0\/24/ },
    { args: ['create', '--driver', 'docker', '--docker-ip', '10.207.300.1', dname], expect: /an IPv4 address/ },
    { args: ['create', '--driver', 'docker', '--docker-privileged', 'sometimes', dname], expect: /auto, always or never/ },
    { args: ['create', '--driver', 'docker', '--docker-network', 'bad name!', dname], expect: /a docker network name/ },
    { args: ['create', '--driver', 'docker', '--docker-network', `${network}-route`, '--docker-subnet', '192.0.2.0/24', dname], expect: /overlaps a route of this machine/ },
    { args: ['create', '--driver', 'docker', '--docker-image', 'nope/none:3', dname], expect: /host image "nope\/none:3" does not exist/ },
    // Engine flags.
    { args: ['create', '--driver', 'docker', '--engine-install', 'sometimes', dname], expect: /--engine-install=sometimes to be one of: bundle, script, package, none/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-opt', 'novalue'], expect: /--engine-opt takes k=v, not "novalue"/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-env', 'novalue'], expect: /--engine-env takes k=v, not "novalue"/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-label', 'novalue'], expect: /--engine-label takes k=v, not "novalue"/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-registry-ca', 'nofile'], expect: /--engine-registry-ca takes HOST:PORT=FILE, not "nofile"/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-registry-ca', `reg.example:5000=${missing}`], expect: /registry CA file .*does-not-exist does not exist/ },
    { args: ['create', '--driver', 'docker', dname, '--engine-registry-ca', `reg.example:5000=${ca}`], expect: /registry CA file .*registry-ca\.crt is not a PEM certificate/ },
    { args: ['create', '--driver', 'docker', '--engine-bundle', missing, dname], expect: /engine bundle .*does-not-exist not found/ },
    { args: ['create', '--driver', 'docker', '--engine-bundle', work, dname], expect: /engine bundle .*tm-badinput-\w+ is not a file/ },
    { args: ['create', '--driver', 'docker', '--engine-bundle', notATarball, dname], expect: /bundle\.tgz is not a readable \.tgz bundle/ },
    { args: ['engine', 'bundle', 'fetch', 'not.a.version'], expect: /"not\.a\.version" is not a Docker engine version/ },
    // Counts and ports of a bootstrap.
    { args: ['swarm', 'bootstrap', '--managers', '0', '--prefix', prefix], expect: /a swarm needs at least one manager/ },
    { args: ['swarm', 'bootstrap', '--managers', '-1', '--prefix', prefix], expect: /--managers takes a whole number \(0 or more\), not -1/ },
    { args: ['swarm', 'bootstrap', '--managers', '1', '--workers', '-1', '--prefix', prefix], expect: /--workers takes a whole number \(0 or more\), not -1/ },
    { args: ['swarm', 'bootstrap', '--managers', '2', '--strict', '--prefix', prefix], expect: /2 managers cannot keep quorum after losing one/ },
    { args: ['swarm', 'bootstrap', '--managers', '9', '--strict', '--prefix', prefix], expect: /9 managers is more than Docker's recommended maximum of 7/ },
    { args: ['swarm', 'bootstrap', '--managers', '1001', '--prefix', prefix], expect: /1001 machines do not fit on the docker driver here/ },
    { args: ['swarm', 'bootstrap', '--managers', '1', '--data-path-port', '99999', '--prefix', prefix], expect: /data-path port 99999 is out of range \(Docker takes a data-path port from 1024 to 49151/ },
    { args: ['swarm', 'bootstrap', '--managers', '1', '--data-path-port', '80', '--prefix', prefix], expect: /data-path port 80 is out of range/ },
    { args: ['swarm', 'bootstrap', '--managers', '1', '--prefix', 'bad_prefix!'], expect: /invalid --prefix "bad_prefix!"/ },
    // Cluster files.
    { args: ['swarm', 'bootstrap', '-f', missing], expect: /does-not-exist: cannot read the cluster file \(ENOENT\)/ },
    { args: ['swarm', 'bootstrap', '-f', notYaml], expect: /not-yaml\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', tabs], expect: /tabs\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', empty], expect: /empty\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', binary], expect: /binary\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', unknownDriver], expect: /unknown-driver\.yml.*nosuchdriver/ },
    { args: ['swarm', 'bootstrap', '-f', unknownField], expect: /unknown-field\.yml:4.*colour/ },
    { args: ['swarm', 'bootstrap', '-f', wrongType], expect: /wrong-type\.yml:3.*managers/ },
    { args: ['swarm', 'bootstrap', '-f', duplicate], expect: /duplicate\.yml.*db1/ },
    { args: ['swarm', 'bootstrap', '-f', evenManagers], expect: /even\.yml:3.*2 managers/ },
    { args: ['swarm', 'bootstrap', '-f', noName], expect: /no-name\.yml.*name/ },
    { args: ['swarm', 'bootstrap', '-f', badName], expect: /bad-name\.yml/ },
    { args: ['swarm', 'bootstrap', '-f', negativeWorkers], expect: /neg-workers\.yml.*count/ },
    // Cluster files: driver options, reported at file:line like the rest of the file.
    { args: ['swarm', 'bootstrap', '-f', ec2Region], expect: /ec2-region\.yml:4: driver\.region: takes a region such as eu-west-1, got "12"/, env: aws },
    { args: ['swarm', 'bootstrap', '-f', ec2Unknown], expect: /ec2-unknown\.yml:5: driver\.colour: unknown option of driver ec2/, env: aws },
    { args: ['swarm', 'bootstrap', '-f', ec2Cidr], expect: /ec2-cidr\.yml:6: driver\.source-cidr\[1\]: takes CIDR ranges such as 203\.0\.113\.0\/24, got "198\.51\.100\.7"/, env: aws },
    { args: ['swarm', 'bootstrap', '-f', ec2CidrFull], expect: /ec2-cidr-full\.yml:2: driver\.ec2-source-cidr: takes CIDR ranges/, env: aws },
    { args: ['swarm', 'bootstrap', '-f', gceGroup], expect: /gce-group\.yml:6: workers\[0\]\.driver\.disk-size: at least 10 GB, got 5/, env: gceToken },
    { args: ['swarm', 'bootstrap', '-f', gceType], expect: /gce-type\.yml:2: driver\.disk-size: expected a number, got "big"/, env: gceToken },
    { args: ['swarm', 'bootstrap', '-f', genericPort], expect: /generic-port\.yml:7: nodes\[0\]\.driver\.ssh-port: a port from 1 to 65535, got 70000/ },
    { args: ['swarm', 'bootstrap', '-f', vboxMemory], expect: /vbox-memory\.yml:4: driver\.memory: at least 512 MB/, env: vboxEnv },
    { args: ['swarm', 'bootstrap', '-f', dockerPrivileged], expect: /docker-privileged\.yml:2: driver\.privileged: auto, always or never, got "sometimes"/ },
    // ec2 driver flags (and Docker Machine's --amazonec2-* spellings), against the EC2 fake.
    { args: ec2Create('--ec2-region', 'bad region'), expect: /--ec2-region "bad region": takes a region such as eu-west-1/, env: aws },
    { args: amazonCreate('--amazonec2-region', '12'), expect: /--ec2-region "12": takes a region/, env: aws },
    { args: ec2Create('--ec2-instance-type', 'T3 SMALL'), expect: /--ec2-instance-type "T3 SMALL": takes instance types such as t3\.small/, env: aws },
    { args: amazonCreate('--amazonec2-source-cidr', '10.0.0.0'), expect: /--ec2-source-cidr "10\.0\.0\.0": takes CIDR ranges/, env: aws },
    { args: ec2Create('--ec2-source-cidr', '10.0.0.0/8,not-a-cidr'), expect: /--ec2-source-cidr "10\.0\.0\.0\/8,not-a-cidr": takes CIDR ranges/, env: aws },
    { args: ec2Create('--ec2-open-port', 'http'), expect: /--ec2-open-port "http": takes PORT, PORT\/udp or FROM-TO\/tcp/, env: aws },
    { args: ec2Create('--ec2-root-size', '2'), expect: /--ec2-root-size "2": must be at least 8 \(GiB\)/, env: aws },
    { args: amazonCreate('--amazonec2-root-size', 'big'), expect: /--ec2-root-size takes a number, not "big"/, env: aws },
    { args: ec2Create('--ec2-volume-type', 'gp9'), expect: /--ec2-volume-type "gp9": takes gp3, gp2, io1, io2, st1, sc1 or standard/, env: aws },
    { args: ec2Create('--ec2-ami', 'debian'), expect: /--ec2-ami "debian": takes an image id such as ami-/, env: aws },
    { args: ec2Create('--ec2-zone', 'us east'), expect: /--ec2-zone "us east": takes a zone/, env: aws },
    { args: ec2Create('--ec2-tags', 'owner,me,odd'), expect: /--ec2-tags "owner,me,odd": takes key1,value1,key2,value2/, env: aws },
    { args: ['create', '--driver', 'ec2', '--ec2-endpoint', 'ftp://127.0.0.1/', `${prefix}e1`], expect: /--ec2-endpoint "ftp:\/\/127\.0\.0\.1\/": takes an http\(s\) URL/, env: aws },
    // ... and what only the API can say: nothing it made may be left.
    { args: ec2Create('--ec2-ami', 'ami-0123456789abcdef0'), expect: /DescribeImages: the image does not exist in us-east-1: .*ami-0123456789abcdef0/, api: true, env: aws },
    { args: ec2Create('--ec2-instance-type', 't3.enormous'), expect: /DescribeInstanceTypes: .*t3\.enormous.*\(check --ec2-instance-type\)/, api: true, env: aws },
    { args: ec2Create('--ec2-subnet-id', 'subnet-0123abcd'), expect: /DescribeSubnets: The subnet ID 'subnet-0123abcd' does not exist/, api: true, env: aws },
    { args: ec2Create('--ec2-security-group', 'no-such-group'), expect: /security group no-such-group does not exist/, api: true, env: aws },
    // Refused by RunInstances, after the key pair and the security group were made: both go.
    { args: ec2Create('--ec2-iam-instance-profile', 'no-such-profile'), expect: /RunInstances: .*no-such-profile.*Invalid IAM Instance Profile name/, api: true, env: aws },
    // Missing AWS credentials: one line naming where the chain looked; nothing reaches the fake.
    { args: ec2Create(), expect: /no AWS credentials found \(looked in: environment \(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\), profile "default" in .*instance metadata/, env: noAws },
    { args: ec2Create('--ec2-profile', 'nosuchprofile'), expect: /no AWS credentials found \(looked in: .*profile "nosuchprofile" in /, env: noAws },
    // gce driver flags (and --google-*), against the Compute Engine fake.
    { args: googleCreate('--google-zone', 'nowhere'), expect: /--gce-zone "nowhere": a zone like europe-west1-b/, env: gceToken },
    { args: gceCreate('--gce-machine-type', 'E2 Medium'), expect: /--gce-machine-type "E2 Medium": machine types like e2-medium/, env: gceToken },
    { args: gceCreate('--gce-disk-size', '5'), expect: /--gce-disk-size "5": at least 10 GB/, env: gceToken },
    { args: googleCreate('--google-disk-size', 'lots'), expect: /--gce-disk-size takes a number, not "lots"/, env: gceToken },
    { args: gceCreate('--gce-tags', 'Bad_Tag'), expect: /--gce-tags "Bad_Tag": tags in lowercase letters, digits and -/, env: gceToken },
    { args: gceCreate('--gce-source-range', '10.0.0.0'), expect: /--gce-source-range "10\.0\.0\.0": a CIDR range like 203\.0\.113\.0\/24/, env: gceToken },
    { args: gceCreate('--gce-open-port', 'http'), expect: /--gce-open-port "http": a port like 8080\/tcp/, env: gceToken },
    { args: gceCreate('--gce-label', 'Owner=Me'), expect: /--gce-label "Owner=Me": KEY=VALUE in lowercase/, env: gceToken },
    { args: gceCreate('--gce-address', '300.1.1'), expect: /--gce-address "300\.1\.1": an IPv4 address/, env: gceToken },
    { args: ['create', '--driver', 'gce', '--gce-project', 'bad project!', '--gce-endpoint', GCE_ENDPOINT, `${prefix}g1`], expect: /--gce-project "bad project!": a project ID/, env: gceToken },
    // ... and what only the API can say: nothing it made (firewall rules first) may be left.
    { args: gceCreate('--gce-machine-type', 'e2-enormous'), expect: /Machine type with name 'e2-enormous' does not exist in zone 'europe-west1-b'/, api: true, env: gceToken },
    { args: ['create', '--driver', 'gce', '--gce-project', 'p', '--gce-zone', 'mars-north1-a', '--gce-endpoint', GCE_ENDPOINT, `${prefix}g1`], expect: /no zone mars-north1-a in project p/, api: true, env: gceToken },
    // Missing Google credentials: with an endpoint only the token counts; without, ADC looks
    // locally (never the network: this is no GCE VM) and says where.
    { args: gceCreate(), expect: /no credentials for http:\/\/127\.0\.0\.1:\d+: \$GOOGLE_OAUTH_ACCESS_TOKEN is not set/, env: noGce },
    { args: ['create', '--driver', 'gce', '--gce-project', 'p', `${prefix}g1`], expect: /Application Default Credentials: none found \(looked in: \$GOOGLE_APPLICATION_CREDENTIALS \(not set\); .*no-home\/\.config\/gcloud\/application_default_credentials\.json \(no such file\); the GCE metadata server \(this computer is not a GCE VM\)\)/, env: noGce },
    // virtualbox driver flags, with the fake VBoxManage first on PATH.
    { args: vboxCreate('--virtualbox-memory', '256'), expect: /--virtualbox-memory "256": at least 512 MB/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-cpu-count', '0'), expect: /--virtualbox-cpu-count "0": a number of CPUs from 1 to 64/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-disk-size', '10'), expect: /--virtualbox-disk-size "10": at least 4096 MB/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-hostonly-cidr', '192.168.56.1'), expect: /--virtualbox-hostonly-cidr "192\.168\.56\.1": an IPv4 address with a prefix length/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-hostonly-cidr', '300.1.1.1/24'), expect: /--virtualbox-hostonly-cidr "300\.1\.1\.1\/24" is not an IPv4 CIDR/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-hostonly-cidr', '10.0.0.1/40'), expect: /--virtualbox-hostonly-cidr "10\.0\.0\.1\/40": the prefix length must be 8 to 29/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-image-url', 'ftp://images.example/debian.raw'), expect: /--virtualbox-image-url "ftp:\/\/images\.example\/debian\.raw": an http\(s\) URL or the path of a local image file/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-image-url', missing), expect: /--virtualbox-image-url .*does-not-exist: no such file/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-image-checksum', 'md5:abc'), expect: /--virtualbox-image-checksum "md5:abc": sha256:<64 hex> or sha512:<128 hex>/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-hostonly-nictype', 'e1000'), expect: /--virtualbox-hostonly-nictype "e1000": one of Am79C970A, Am79C973, Am79C960, 82540EM, 82543GC, 82545EM, virtio/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-ui-type', 'fullscreen'), expect: /--virtualbox-ui-type "fullscreen": headless, gui, sdl or separate/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-share-folder', 'nocolon'), expect: /--virtualbox-share-folder "nocolon": DIR:NAME/, env: vboxEnv },
    { args: vboxCreate('--virtualbox-vboxmanage', missing), expect: /--virtualbox-vboxmanage .*does-not-exist: no executable there/, env: vboxEnv },
    // More generic driver flags.
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-private-address', 'not an address', 'g1'], expect: /--generic-private-address "not an address": not an IP address or host name/ },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', '--generic-ssh-port', '70000', 'g1'], expect: /--generic-ssh-port "70000": a port from 1 to 65535/ },
    // Swarm commands on what does not exist.
    { args: ['swarm', 'join', 'nope', '--role', 'worker'], expect: /machine "nope" does not exist/ },
    { args: ['swarm', 'status', '--cluster', 'nosuchcluster'], expect: /cluster "nosuchcluster" does not exist/ },
    { args: ['swarm', 'deploy', '-c', missing, 'web', '--cluster', 'nosuchcluster'], expect: /stack file .*does-not-exist does not exist/ },
    { args: ['swarm', 'deploy', '-c', stackFile, 'bad stack!'], expect: /invalid stack name "bad stack!"/ },
    { args: ['swarm', 'label', 'box', 'novalue'], expect: /no swarm has been bootstrapped in this store/ },
    // A store written by a newer tmachine.
    { args: ['ls'], expect: /store\.json was written by a newer tmachine \(store schema \d+, this tmachine reads up to \d+\)/, store: 'newer' },
    { args: ['create', '--driver', 'generic', '--generic-ip-address', '10.207.99.10', 'g1'], expect: /store\.json was written by a newer tmachine/, store: 'newer' },
  ];

  /** What the cloud fakes hold that a case could have made. */
  const cloudResources = async (): Promise<string[]> => {
    await Promise.all([ec2.settle(), gce.settle()]);
    const state = vbox.state();
    return [
      ...ec2.liveInstances().map((i) => `ec2 instance ${i.instanceId}`),
      ...[...ec2.keyPairs.values()].map((k) => `ec2 key pair ${k.keyName}`),
      ...[...ec2.groups.values()].filter((g) => g.groupName !== 'default').map((g) => `ec2 security group ${g.groupName}`),
      ...gce.listInstances().map((i) => `gce instance ${String(i['name'])}`),
      ...gce.listFirewalls().map((r) => `gce firewall rule ${String(r['name'])}`),
      ...Object.values(state.vms).map((v) => `virtualbox VM ${v.name}`),
      ...Object.values(state.media).map((m) => `virtualbox medium ${m.location}`),
      ...Object.values(state.hostonlyifs).map((h) => `virtualbox host-only interface ${h.name}`),
    ].sort();
  };

  beforeAll(async () => {
    lab = await prepareLab();
    ec2 = await FakeEc2.start();
    gce = new GceFake({ backend: stubBackend() });
    await gce.start();
    vbox = await startFakeVBox(lab.docker, { label: 'tmachine.test', value: `hbad-${prefix}`, prefix: `tm-${prefix}` });
    // One machine in the store, so "already exists" and commands on a known name mean something.
    const s = await Store.open(store.path);
    await s.reserve({
      schemaVersion: STORE_SCHEMA_VERSION,
      name: 'box',
      createdAt: new Date().toISOString(),
      driver: { name: 'generic', options: { 'generic-ip-address': '10.207.99.10' }, state: {}, resources: [] },
      ssh: { user: 'root', host: '10.207.99.10', port: 22, keyPath: 'id_ed25519' },
      addresses: { public: '10.207.99.10' },
      engine: { install: 'none', opts: [], env: [], labels: [], insecureRegistries: [], registryMirrors: [], registryCAs: [], port: 2376 },
    });
    await s.writeSecretFile(path.join(s.machineDir('box'), 'id_ed25519'), fs.readFileSync(goodKey, 'utf8'));
    await Store.open(newer.path);
    fs.writeFileSync(path.join(newer.path, 'store.json'), JSON.stringify({ schemaVersion: STORE_SCHEMA_VERSION + 1 }));
  });
  afterAll(async () => {
    await ec2?.close();
    await gce?.stop();
    await vbox?.close();
    store.cleanup();
    newer.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
    // A case that wrongly got as far as making a host must not leave it behind either.
    if (lab) {
      for (const c of await lab.docker.listContainers({ all: true, filters: { label: ['tmachine.machine'] } })) {
        if (c.Labels['tmachine.machine']?.startsWith(prefix)) await lab.docker.getContainer(c.Id).remove({ force: true, v: true });
      }
      for (const v of (await lab.docker.listVolumes({ filters: { label: ['tmachine.machine'] } })).Volumes ?? []) {
        if (v.Labels?.['tmachine.machine']?.startsWith(prefix)) await lab.docker.getVolume(v.Name).remove().catch(() => undefined);
      }
    }
    for (const n of [network, `${network}-route`]) await lab?.docker.getNetwork(n).remove().catch(() => undefined);
  });

  it(`holds at least 60 cases (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  for (const c of cases) {
    it(`tmachine ${c.args.map((a) => (a.startsWith(work) ? path.basename(a) : a)).join(' ')}`, async () => {
      const root = c.store === 'newer' ? newer.path : store.path;
      const before = treeHash(root);
      const callsBefore = ec2.calls.length + gce.calls.length;
      const args = c.args.map((a) => (a === EC2_ENDPOINT ? ec2.url : a === GCE_ENDPOINT ? gce.url : a));
      const env = typeof c.env === 'function' ? c.env() : c.env;
      const r = await runCli(args, { store: root, timeoutMs: 60_000, env: { TMACHINE_CACHE_PATH: CACHE_DIR, TMACHINE_DOCKER_NETWORK: network, TMACHINE_DOCKER_SUBNET: '10.207.98.0/24', ...env } });
      expect(r.code, r.stderr).not.toBe(0);
      const lines = errorLines(r);
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(c.expect);
      expect(r.stderr).not.toMatch(STACK_TRACE);
      expect(treeHash(root)).toBe(before);
      expect(await resourcesOf(lab.docker, prefix)).toEqual([]);
      expect(await cloudResources()).toEqual([]);
      if (!c.api) expect(ec2.calls.length + gce.calls.length, 'cloud API calls').toBe(callsBefore);
    });
  }
});
