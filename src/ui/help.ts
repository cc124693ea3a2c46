/**
 * oclif help, plus the one thing it cannot know statically: `create --driver X --help`
 * shows X's flags, loaded from the driver's definition.
 */
import { Help, type Command } from '@oclif/core';
import { builtInDriverNames, loadDriverDefinition } from '../../drivers/registry.js';
import { driverNameFromArgv } from '../cli/driver-flags.js';

const DRIVER_AWARE = new Set(['create']);

export default class TmachineHelp extends Help {
  override async showHelp(argv: string[]): Promise<void> {
    const id = argv.find((a) => !a.startsWith('-'));
    if (!id || !DRIVER_AWARE.has(id)) return super.showHelp(argv);
    const command = this.config.findCommand(id);
    if (!command) return super.showHelp(argv);
    const driverName = driverNameFromArgv(argv);
    if (!driverName) {
      await this.showCommandHelp(command);
      this.log(`DRIVERS\n  ${builtInDriverNames().join(', ')}; \`tmachine ${id} --driver NAME --help\` shows a driver's flags\n`);
      return;
    }
    const definition = await loadDriverDefinition(driverName);
    const driverFlags: Record<string, Command.Flag.Cached> = {};
    for (const flag of definition.flags) {
      driverFlags[flag.name] = {
        name: flag.name,
        type: flag.type === 'boolean' ? 'boolean' : 'option',
        description: flag.description,
        helpGroup: `${definition.name.toUpperCase()} DRIVER`,
        ...(flag.type === 'boolean' ? { allowNo: true } : { multiple: flag.type === 'string[]' }),
        ...(flag.env ? { env: flag.env } : {}),
        ...(flag.default !== undefined && flag.type !== 'boolean' ? { default: String(flag.default) } : {}),
      } as Command.Flag.Cached;
    }
    await this.showCommandHelp({ ...command, flags: { ...command.flags, ...driverFlags } } as Command.Loadable);
  }
}
