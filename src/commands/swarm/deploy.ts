import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { deployStack } from '../../swarm/operations.js';

export default class SwarmDeploy extends BaseCommand {
  static override summary = 'Hand a stack file to a manager (docker stack deploy); swarm mode runs it from there';
  static override examples = ['<%= config.bin %> swarm deploy -c stack.yml web'];
  static override args = { stack: Args.string({ description: 'Stack name', required: true }) };
  static override flags = {
    'compose-file': Flags.string({ char: 'c', description: 'Stack (compose) file', required: true }),
    cluster: Flags.string({ description: 'Cluster name (default: the only one)' }),
    'with-registry-auth': Flags.boolean({ description: 'Send registry credentials to the agents' }),
    prune: Flags.boolean({ description: 'Remove services no longer in the file' }),
    'open-ports': Flags.boolean({ description: "Open the stack's published ports in the host firewall and the cloud firewall (ec2, gce) from --source-cidr only" }),
    'source-cidr': Flags.string({ description: 'Who may reach the published ports (with --open-ports), e.g. 203.0.113.0/24' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmDeploy);
    const out = await deployStack(await this.store(), flags['compose-file'], args.stack, flags.cluster, {
      withRegistryAuth: flags['with-registry-auth'],
      prune: flags.prune,
      openPorts: flags['open-ports'],
      ...(flags['source-cidr'] ? { sourceCidr: flags['source-cidr'] } : {}),
    });
    this.print(out.trim());
  }
}
