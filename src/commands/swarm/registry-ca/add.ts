import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../../base-command.js';
import { addRegistryCa } from '../../../swarm/ops/registry.js';

export default class SwarmRegistryCaAdd extends BaseCommand {
  static override summary = "Trust a private registry's CA on every node (/etc/docker/certs.d/HOST:PORT/ca.crt), and on nodes that join later";
  static override examples = ['<%= config.bin %> swarm registry-ca add registry.example.org:5000 ./certs/registry-ca.crt'];
  static override args = {
    registry: Args.string({ description: 'Registry HOST:PORT', required: true }),
    file: Args.string({ description: 'CA certificate (PEM)', required: true }),
  };
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    json: Flags.boolean({ description: 'JSON output' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmRegistryCaAdd);
    const result = await addRegistryCa(await this.store(), args.registry, args.file, flags.cluster);
    if (flags.json) return this.printJson(result);
    this.print(`${args.registry}: CA installed on ${result.installed.length} node(s)${result.pending.length ? `; ${result.pending.join(', ')} did not answer and get it when provisioned again` : ''}`);
  }
}
