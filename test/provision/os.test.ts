import { describe, expect, it } from 'vitest';
import { TmachineError } from '../../src/errors.js';
import type { ExecOptions, ExecResult, RemoteHost } from '../../src/ssh/types.js';
import { asRoot, detectHost, dockerArch, parseOsRelease, shellQuote } from '../../provision/os.js';

const DEBIAN_12 = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`;

const UBUNTU_2404 = `PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
`;

const ROCKY_9 = `NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
ANSI_COLOR="0;32"
`;

const OPENSUSE_LEAP = `NAME="openSUSE Leap"
VERSION="15.6"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.6"
PRETTY_NAME="openSUSE Leap 15.6"
`;

const ALPINE = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
HOME_URL="https://alpinelinux.org/"
`;

const ARCH = `NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
`;

describe('parseOsRelease', () => {
  it('reads Debian 12', () => {
    expect(parseOsRelease(DEBIAN_12)).toEqual({
      id: 'debian',
      idLike: [],
      versionId: '12',
      prettyName: 'Debian GNU/Linux 12 (bookworm)',
      family: 'debian',
      init: 'systemd',
    });
  });

  it('reads Ubuntu 24.04 as the Debian family', () => {
    expect(parseOsRelease(UBUNTU_2404)).toMatchObject({ id: 'ubuntu', idLike: ['debian'], versionId: '24.04', family: 'debian', init: 'systemd' });
  });

  it('reads Rocky 9 as the RHEL family', () => {
    expect(parseOsRelease(ROCKY_9)).toMatchObject({ id: 'rocky', idLike: ['rhel', 'centos', 'fedora'], versionId: '9.4', family: 'rhel', prettyName: 'Rocky Linux 9.4 (Blue Onyx)' });
  });

  it('reads openSUSE Leap as the SUSE family', () => {
    expect(parseOsRelease(OPENSUSE_LEAP)).toMatchObject({ id: 'opensuse-leap', family: 'suse', versionId: '15.6' });
  });

  it('reads Alpine, which runs OpenRC', () => {
    expect(parseOsRelease(ALPINE)).toMatchObject({ id: 'alpine', family: 'alpine', init: 'openrc', versionId: '3.20.3' });
  });

  it('falls back to ID_LIKE for derivatives it does not know by name', () => {
    expect(parseOsRelease('ID=someos\nID_LIKE="ubuntu debian"\nVERSION_ID=1\n')).toMatchObject({ family: 'debian', prettyName: 'someos 1' });
  });

  it('refuses an unsupported OS, naming it and the supported families', () => {
    const attempt = () => parseOsRelease(ARCH);
    expect(attempt).toThrow(TmachineError);
    expect(attempt).toThrow('unsupported OS Arch Linux');
    try {
      attempt();
    } catch (error) {
      expect((error as TmachineError).hint).toMatch(/Debian\/Ubuntu, RHEL\/CentOS\/Fedora\/Rocky, SUSE, Alpine/);
    }
  });

  it('handles single quotes, escapes and comments', () => {
    const info = parseOsRelease(`# comment\nID='debian'\nPRETTY_NAME="Say \\"hi\\""\nVERSION_ID=12\n`);
    expect(info.prettyName).toBe('Say "hi"');
  });
});

/** A host that answers the detection script with canned output. */
function fakeHost(answer: { osRelease: string; arch?: string; user?: string; init?: string; privilege?: string }): RemoteHost {
  const stdout = `${answer.osRelease}\n@@tmachine@@\n${answer.arch ?? 'x86_64'}\n${answer.user ?? 'ubuntu'}\n/home/${answer.user ?? 'ubuntu'}\n${answer.init ?? 'systemd'}\n${answer.privilege ?? 'sudo'}\n`;
  const exec = async (_command: string, _options?: ExecOptions): Promise<ExecResult> => ({ code: 0, stdout, stderr: '' });
  return {
    label: 'web1',
    exec,
    run: async () => stdout,
    upload: async () => undefined,
    writeFile: async () => undefined,
    download: async () => undefined,
    close: () => undefined,
  };
}

describe('detectHost', () => {
  it('combines os-release, arch, user and privileges', async () => {
    expect(await detectHost(fakeHost({ osRelease: UBUNTU_2404, arch: 'aarch64' }))).toMatchObject({
      family: 'debian',
      arch: 'aarch64',
      user: 'ubuntu',
      home: '/home/ubuntu',
      root: false,
      init: 'systemd',
    });
    expect(await detectHost(fakeHost({ osRelease: DEBIAN_12, user: 'root', privilege: 'root' }))).toMatchObject({ root: true, user: 'root' });
  });

  it('fails clearly without passwordless sudo', async () => {
    await expect(detectHost(fakeHost({ osRelease: DEBIAN_12, user: 'deploy', privilege: 'nosudo' }))).rejects.toThrow(
      'user deploy on web1 has no passwordless sudo',
    );
  });

  it('fails clearly without systemd or OpenRC', async () => {
    await expect(detectHost(fakeHost({ osRelease: DEBIAN_12, init: 'none' }))).rejects.toThrow(/runs neither systemd nor OpenRC/);
  });

  it('takes OpenRC on Alpine', async () => {
    expect(await detectHost(fakeHost({ osRelease: ALPINE, init: 'openrc' }))).toMatchObject({ family: 'alpine', init: 'openrc' });
  });
});

describe('shell helpers', () => {
  it('quotes for POSIX shells', () => {
    expect(shellQuote('plain/path-1.2')).toBe('plain/path-1.2');
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('a b')).toBe("'a b'");
  });

  it('uses sudo -n unless root', () => {
    expect(asRoot({ root: false }, 'id -u')).toBe("sudo -n sh -c 'id -u'");
    expect(asRoot({ root: true }, 'id -u')).toBe("sh -c 'id -u'");
  });

  it('names architectures as Docker does', () => {
    expect(dockerArch('x86_64')).toBe('amd64');
    expect(dockerArch('aarch64')).toBe('arm64');
  });
});
