import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { TmachineError } from '../../errors.js';
import { loginToRegistry } from '../../swarm/ops/registry.js';
import { registerSecret } from '../../ui/redact.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Uint8Array));
  // `echo "$PW" |` adds a newline that is not part of the password (as docker login does).
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export default class RegistryLogin extends BaseCommand {
  static override summary = 'Keep credentials for a private registry (store, 0600); swarm deploy hands them to the swarm';
  static override examples = ['printf %s "$PASSWORD" | <%= config.bin %> registry login registry.example.org:5000 -u deploy --password-stdin'];
  static override args = { registry: Args.string({ description: 'Registry HOST or HOST:PORT', required: true }) };
  static override flags = {
    username: Flags.string({ char: 'u', description: 'User name' }),
    'password-stdin': Flags.boolean({ description: 'Read the password from stdin (never pass it as an argument)' }),
    cluster: Flags.string({ char: 'c', description: 'Cluster whose manager checks the login (default: the only one)' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(RegistryLogin);
    if (!flags.username) throw new TmachineError('registry login needs a user name', { hint: 'pass -u USER' });
    if (!flags['password-stdin']) {
      throw new TmachineError('registry login reads the password from stdin only', { hint: `pipe it in: \`printf %s "$PASSWORD" | tmachine registry login ${args.registry} -u ${flags.username} --password-stdin\`` });
    }
    const password = await readStdin();
    registerSecret(password);
    const result = await loginToRegistry(await this.store(), { registry: args.registry, username: flags.username, password }, flags.cluster);
    this.print(`credentials for ${args.registry} kept${result.verifiedOn ? ` (login checked on ${result.verifiedOn})` : ''}`);
  }
}
