import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../../base-command.js';
import { fetchBundle } from '../../../engine/bundle.js';
import { info } from '../../../ui/log.js';

export default class BundleFetch extends BaseCommand {
  static override summary = "Download Docker's static release VERSION into the cache, checked by SHA-256";
  static override examples = ['<%= config.bin %> engine bundle fetch 27.3.1 --sha256 <sum>'];
  static override args = { version: Args.string({ description: 'Engine version, e.g. 27.3.1', required: true }) };
  static override flags = {
    arch: Flags.string({ description: 'Host architecture (x86_64, aarch64); default: this machine' }),
    sha256: Flags.string({ description: 'Expected SHA-256 (default: <url>.sha256 when the server publishes it)' }),
    'base-url': Flags.string({ description: 'Where static releases live', env: 'TMACHINE_ENGINE_BUNDLE_BASE_URL' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(BundleFetch);
    const store = await this.store();
    const bundle = await fetchBundle({
      version: args.version,
      cacheDir: store.cacheDir,
      report: info,
      ...(flags.arch ? { arch: flags.arch } : {}),
      ...(flags.sha256 ? { sha256: flags.sha256 } : {}),
      ...(flags['base-url'] ? { baseUrl: flags['base-url'] } : {}),
    });
    this.print(`${bundle.path}\nsha256 ${bundle.sha256}`);
  }
}
