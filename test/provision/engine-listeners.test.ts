import { describe, expect, it } from 'vitest';
import { describeListeners, foreignListeners, migrateScript } from '../../provision/engine-listeners.js';

const files = (entries: Record<string, string>) => Object.entries(entries).map(([path, content]) => `==> tmachine-file ${path}\n${content}\n`).join('');

describe('engines set up outside tmachine', () => {
  it("finds the DCCN manual's drop-in: -H tcp://0.0.0.0:2375 on dockerd's command line", () => {
    const out = files({
      '/etc/systemd/system/docker.service.d/override.conf': '[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2375\n',
    });
    const found = foreignListeners(out);
    expect(found).toEqual([{ file: '/etc/systemd/system/docker.service.d/override.conf', hosts: ['fd://', 'tcp://0.0.0.0:2375'], kind: 'drop-in' }]);
    expect(describeListeners(found)).toBe('tcp://0.0.0.0:2375 (plain TCP, no TLS) in /etc/systemd/system/docker.service.d/override.conf');
  });

  it('reads every spelling dockerd takes, continued lines included, and skips comments', () => {
    const out = files({
      '/etc/systemd/system/docker.service.d/a.conf': '[Service]\n# ExecStart=/usr/bin/dockerd -H tcp://1.2.3.4:1\nExecStart=/usr/bin/dockerd \\\n  --host=tcp://0.0.0.0:2375\n',
      '/etc/systemd/system/docker.service.d/b.conf': '[Service]\nEnvironment="DOCKER_OPTS=-Htcp://10.0.0.1:4243"\n',
      '/etc/systemd/system/docker.service.d/c.conf': '[Service]\nExecStart=/usr/bin/dockerd --host 0.0.0.0:2375\n',
    });
    expect(foreignListeners(out).map((l) => l.hosts)).toEqual([['tcp://0.0.0.0:2375'], ['tcp://10.0.0.1:4243'], ['0.0.0.0:2375']]);
  });

  it("leaves tmachine's own files and drop-ins without listeners alone", () => {
    const out = files({
      '/etc/systemd/system/docker.service.d/10-tmachine.conf': '# Written by tmachine; provisioning rewrites it.\n[Service]\nExecStart=\nExecStart=/usr/bin/dockerd\n',
      '/etc/systemd/system/docker.service.d/http-proxy.conf': '[Service]\nEnvironment="HTTP_PROXY=http://proxy:3128"\n',
      '/etc/docker/daemon.json': JSON.stringify({ hosts: ['unix:///var/run/docker.sock', 'tcp://0.0.0.0:2376'], tls: true, tlsverify: true }),
    });
    expect(foreignListeners(out)).toEqual([]);
  });

  it('finds a hosts key in daemon.json that serves plain TCP', () => {
    const out = files({ '/etc/docker/daemon.json': JSON.stringify({ hosts: ['unix:///var/run/docker.sock', 'tcp://0.0.0.0:2375'] }) });
    expect(foreignListeners(out)).toEqual([{ file: '/etc/docker/daemon.json', hosts: ['tcp://0.0.0.0:2375'], kind: 'daemon-json' }]);
  });

  it('--engine-migrate-tls moves drop-ins aside (systemd reads only *.conf) and keeps a copy of daemon.json', () => {
    const script = migrateScript([
      { file: '/etc/systemd/system/docker.service.d/override.conf', hosts: ['tcp://0.0.0.0:2375'], kind: 'drop-in' },
      { file: '/etc/docker/daemon.json', hosts: ['tcp://0.0.0.0:2375'], kind: 'daemon-json' },
    ]);
    expect(script).toContain('mv -f /etc/systemd/system/docker.service.d/override.conf /etc/systemd/system/docker.service.d/override.conf.tmachine-moved');
    expect(script).toContain('cp -f /etc/docker/daemon.json /etc/docker/daemon.json.tmachine-moved');
  });
});
