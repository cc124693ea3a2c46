import path from 'node:path';
import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { engineUrl } from '../engine/client.js';
import { TmachineError } from '../errors.js';
import { shellEnv, type Shell } from '../ui/shell-env.js';

export default class Env extends BaseCommand {
  static override summary = 'Print the commands that point the docker CLI at a machine';
  static override examples = ['eval "$(<%= config.bin %> env n1)"', '<%= config.bin %> env --shell fish n1 | source', 'eval "$(<%= config.bin %> env --unset)"'];
  static override args = { name: Args.string({ description: 'Machine name' }) };
  static override flags = {
    shell: Flags.string({ description: 'Shell syntax (default: from $SHELL)', options: ['bash', 'zsh', 'sh', 'fish', 'powershell', 'cmd', 'emacs', 'tcsh'] }),
    unset: Flags.boolean({ char: 'u', description: 'Print the commands that unset the variables instead' }),
    'no-proxy': Flags.boolean({ description: "Add the machine's address to NO_PROXY (as docker-machine env --no-proxy)" }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Env);
    const shell = (flags.shell ?? detectShell()) as Shell;
    if (flags.unset) {
      return this.print(shellEnv(shell, { DOCKER_TLS_VERIFY: null, DOCKER_HOST: null, DOCKER_CERT_PATH: null, DOCKER_MACHINE_NAME: null }, 'tmachine env --unset'));
    }
    if (!args.name) throw new TmachineError('env needs a machine name', { hint: 'tmachine env NAME, or --unset' });
    const store = await this.store();
    const record = await store.load(args.name);
    if (!record.provisioned) {
      throw new TmachineError(`machine "${record.name}" has no engine provisioned yet`, { hint: `run \`tmachine provision ${record.name}\`` });
    }
    this.print(
      shellEnv(
        shell,
        {
          DOCKER_TLS_VERIFY: '1',
          DOCKER_HOST: engineUrl(record),
          DOCKER_CERT_PATH: store.machineDir(record.name),
          DOCKER_MACHINE_NAME: record.name,
          ...(flags['no-proxy'] ? { NO_PROXY: noProxy(record.addresses.public) } : {}),
        },
        `tmachine env ${record.name}`,
      ),
    );
  }
}

/** $NO_PROXY (or $no_proxy) with the address added once. */
function noProxy(address: string): string {
  const current = (process.env['NO_PROXY'] ?? process.env['no_proxy'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return [...new Set([...current, address])].join(',');
}

function detectShell(): Shell {
  const name = path.basename(process.env['SHELL'] ?? '');
  if (name === 'fish' || name === 'zsh' || name === 'tcsh') return name;
  if (name === 'pwsh' || name === 'powershell') return 'powershell';
  return 'bash';
}
