import { Args } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { completionScript, type CompletionShell } from '../cli/completion.js';

export default class Completion extends BaseCommand {
  static override summary = 'Print a shell completion script (commands, flags, machine names)';
  static override examples = [
    'source <(<%= config.bin %> completion bash)          # in ~/.bashrc',
    'source <(<%= config.bin %> completion zsh)           # in ~/.zshrc',
    '<%= config.bin %> completion fish > ~/.config/fish/completions/tmachine.fish',
  ];
  static override args = { shell: Args.string({ description: 'Shell', options: ['bash', 'zsh', 'fish'], required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Completion);
    const commands = this.config.commands
      .filter((c) => !c.hidden)
      .map((c) => ({ id: c.id.replace(/:/g, ' '), flags: Object.entries(c.flags ?? {}).flatMap(([name, f]) => [`--${name}`, ...(f.char ? [`-${f.char}`] : [])]) }));
    this.print(completionScript(args.shell as CompletionShell, this.config.bin, commands));
  }
}
