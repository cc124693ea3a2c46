import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { exportContext, upsertContext } from '../cli/docker-context.js';
import { engineUrl } from '../engine/client.js';
import { TmachineError } from '../errors.js';
import { info } from '../ui/log.js';

export default class Context extends BaseCommand {
  static override summary = "Create or update a docker context for a machine (its engine over TLS); --export writes one to share";
  static override description =
    'The context carries the TLS client certificate and key, so `docker --context NAME ...` reaches the engine from anywhere that reaches its address. `--export FILE` writes an archive another person imports with `docker context import NAME FILE`; your own contexts are not changed then.';
  static override examples = ['<%= config.bin %> context n1 && docker --context n1 info', '<%= config.bin %> context n1 --export n1.dockercontext'];
  static override args = { name: Args.string({ description: 'Machine name', required: true }) };
  static override flags = {
    export: Flags.string({ description: 'Write the context to this archive instead of adding it to your docker contexts' }),
    'context-name': Flags.string({ description: 'Name of the docker context (default: the machine name)' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Context);
    const store = await this.store();
    const record = await store.load(args.name);
    if (!record.provisioned) throw new TmachineError(`machine "${record.name}" has no engine provisioned yet`, { hint: `run \`tmachine provision ${record.name}\`` });
    const target = {
      name: flags['context-name'] ?? record.name,
      description: `tmachine machine ${record.name}`,
      host: engineUrl(record),
      certDir: store.machineDir(record.name),
    };
    if (flags.export) {
      await exportContext(target, flags.export);
      info(`Wrote docker context "${target.name}" to ${flags.export} (it holds the client key: share it only with whom may use this engine). Import: docker context import ${target.name} ${flags.export}`);
      return;
    }
    const done = await upsertContext(target);
    info(`docker context "${target.name}" ${done}. Use it: docker --context ${target.name} info, or docker context use ${target.name}`);
  }
}
