import { describe, expect, it } from 'vitest';
import {
  containerdOpenrcScript,
  containerdSystemdUnit,
  dockerOpenrcConf,
  dockerOpenrcScript,
  dockerSystemdDropIn,
  dockerSystemdUnit,
  parseEngineEnv,
} from '../../provision/units.js';
import { firewallSystemdUnit, iptablesScript, swarmPorts } from '../../provision/firewall.js';

function directives(unit: string, name: string): string[] {
  return unit
    .split('\n')
    .filter((line) => line.startsWith(`${name}=`))
    .map((line) => line.slice(name.length + 1));
}

describe('systemd units for a bundle install', () => {
  it('runs dockerd from /usr/local/bin without -H, as a notify service owning its cgroup', () => {
    const unit = dockerSystemdUnit({ env: [] });
    expect(directives(unit, 'ExecStart')).toEqual(['/usr/local/bin/dockerd --containerd=/run/containerd/containerd.sock']);
    expect(unit.split('\n').filter((l) => !l.startsWith('#')).join('\n')).not.toMatch(/\s-H\b|--host/);
    for (const line of ['Type=notify', 'Delegate=yes', 'KillMode=process', 'LimitNOFILE=infinity', 'WantedBy=multi-user.target']) {
      expect(unit).toContain(line);
    }
    expect(unit).toMatch(/After=.*containerd\.service/);
  });

  it('turns --engine-env into Environment= lines, quoted', () => {
    const env = parseEngineEnv(['DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1', 'HTTP_PROXY=http://proxy:3128', 'NOTE=say "hi" 100%']);
    const unit = dockerSystemdUnit({ env });
    expect(directives(unit, 'Environment')).toEqual([
      '"DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1"',
      '"HTTP_PROXY=http://proxy:3128"',
      '"NOTE=say \\"hi\\" 100%%"',
    ]);
  });

  it('rejects malformed --engine-env', () => {
    expect(() => parseEngineEnv(['NOVALUE'])).toThrow(/expected NAME=value/);
    expect(() => parseEngineEnv(['1BAD=x'])).toThrow(/expected NAME=value/);
  });

  it('runs containerd, tolerating a kernel that cannot load overlay', () => {
    const unit = containerdSystemdUnit();
    expect(directives(unit, 'ExecStartPre')).toEqual(['-/sbin/modprobe overlay']);
    expect(directives(unit, 'ExecStart')).toEqual(['/usr/local/bin/containerd']);
    for (const line of ['Type=notify', 'Delegate=yes', 'KillMode=process', 'LimitNOFILE=infinity']) expect(unit).toContain(line);
  });
});

describe('drop-in for packaged engines', () => {
  it("clears the package's ExecStart (its -H fd:// clashes with daemon.json)", () => {
    const dropIn = dockerSystemdDropIn({ env: parseEngineEnv(['A=1']), dockerdPath: '/usr/bin/dockerd', systemContainerd: true });
    expect(directives(dropIn, 'ExecStart')).toEqual(['', '/usr/bin/dockerd --containerd=/run/containerd/containerd.sock']);
    expect(directives(dropIn, 'Environment')).toEqual(['"A=1"']);
    const own = dockerSystemdDropIn({ env: [], dockerdPath: '/usr/bin/dockerd', systemContainerd: false });
    expect(directives(own, 'ExecStart')).toEqual(['', '/usr/bin/dockerd']);
  });
});

describe('OpenRC scripts for Alpine', () => {
  it('starts containerd, then dockerd without -H', () => {
    const containerd = containerdOpenrcScript();
    expect(containerd.startsWith('#!/sbin/openrc-run\n')).toBe(true);
    expect(containerd).toContain('command="/usr/local/bin/containerd"');
    const docker = dockerOpenrcScript();
    expect(docker).toContain('command="/usr/local/bin/dockerd"');
    expect(docker).toContain('need containerd');
    expect(docker).toContain('command_args="--containerd=/run/containerd/containerd.sock"');
  });

  it('exports the engine env from /etc/conf.d/docker, shell-quoted', () => {
    expect(dockerOpenrcConf(parseEngineEnv(['A=1', "B=it's"]))).toBe("# Written by tmachine; provisioning rewrites it.\nexport A='1'\nexport B='it'\\''s'\n");
  });
});

describe('firewall rules', () => {
  it('opens 22, 2376, 2377/tcp, 7946/tcp+udp and the data-path port', () => {
    expect(swarmPorts({}).map((p) => `${p.port}/${p.proto}`)).toEqual(['22/tcp', '2376/tcp', '2377/tcp', '7946/tcp', '7946/udp', '4789/udp']);
    expect(swarmPorts({ dataPathPort: 4800, sshPort: 2222, engine: { port: 12376 } }).map((p) => `${p.port}/${p.proto}`)).toEqual([
      '22/tcp', '2222/tcp', '12376/tcp', '2377/tcp', '7946/tcp', '7946/udp', '4800/udp',
    ]);
  });

  it('adds rules to its own chain only when missing, and persists them with a oneshot unit', () => {
    const script = iptablesScript(swarmPorts({}));
    expect(script).toContain("rules='tcp:22 tcp:2376 tcp:2377 tcp:7946 udp:7946 udp:4789'");
    expect(script).toContain('-C INPUT -j TMACHINE-INPUT');
    expect(script).toContain('-I INPUT 1 -j TMACHINE-INPUT');
    expect(script).toMatch(/-C TMACHINE-INPUT .*\|\|\s*\n\s*fix .* -A TMACHINE-INPUT/);
    const unit = firewallSystemdUnit();
    expect(unit).toContain('Type=oneshot');
    expect(unit).toContain('ExecStart=/usr/local/sbin/tmachine-firewall');
    expect(unit).toContain('Before=network.target docker.service');
  });
});
