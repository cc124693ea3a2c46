import { Flags } from '@oclif/core';
import { BaseCommand } from '../../../base-command.js';
import { TmachineError } from '../../../errors.js';
import { buildBundleFromDebian } from '../../../engine/debian-bundle.js';
import { info } from '../../../ui/log.js';

export default class BundleBuild extends BaseCommand {
  static override summary = "Build an engine bundle from Debian's docker.io, containerd, runc and tini packages";
  static override description = 'For machines that reach only a Debian archive: the bundle has the layout of Docker\'s static release and installs on Debian 12 hosts.';
  static override flags = { 'from-debian': Flags.boolean({ description: "Use Debian's packages (the only source for now)", required: true }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(BundleBuild);
    if (!flags['from-debian']) throw new TmachineError('engine bundle build needs --from-debian');
    const bundle = await buildBundleFromDebian({ cacheDir: (await this.store()).cacheDir, report: info });
    this.print(`${bundle.path}\nversion ${bundle.version}\nsha256 ${bundle.sha256}`);
  }
}
