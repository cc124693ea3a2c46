import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { loadImage } from '../../swarm/operations.js';

export default class SwarmLoad extends BaseCommand {
  static override summary = 'Load an image tarball (docker save) into every node: images for clusters without a registry';
  static override examples = ['docker save busybox:local -o busybox.tar && <%= config.bin %> swarm load busybox.tar'];
  static override args = { tarball: Args.string({ description: 'Image tarball from `docker save`', required: true }) };
  static override flags = {
    cluster: Flags.string({ char: 'c', description: 'Cluster name (default: the only one)' }),
    machine: Flags.string({ char: 'm', description: 'Only these machines (repeatable)', multiple: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SwarmLoad);
    const lines = await loadImage(await this.store(), args.tarball, flags.cluster, flags.machine);
    this.print(lines.join('\n'));
  }
}
