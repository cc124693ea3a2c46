/**
 * Shell completion: commands (topics too), each command's flags, and machine names, which
 * come from `tmachine ls -q` at completion time (no state checks; fast). One small
 * generator for bash, zsh (through bashcompinit) and fish.
 */
export type CompletionShell = 'bash' | 'zsh' | 'fish';

export interface CompletionCommand {
  /** "ls", "swarm bootstrap" */
  id: string;
  flags: string[];
}

function bash(bin: string, commands: CompletionCommand[]): string {
  const fn = `_${bin.replace(/[^a-zA-Z0-9_]/g, '_')}_complete`;
  const top = [...new Set(commands.map((c) => c.id.split(' ')[0]!))].sort();
  const topics = [...new Set(commands.filter((c) => c.id.includes(' ')).map((c) => c.id.split(' ')[0]!))].sort();
  const sub = (topic: string) => [...new Set(commands.filter((c) => c.id.startsWith(`${topic} `)).map((c) => c.id.split(' ')[1]!))].sort();
  const flagCases = commands.map((c) => `    "${c.id}") flags="${[...c.flags, '--help'].join(' ')}" ;;`).join('\n');
  const subCases = topics.map((t) => `    ${t}) subs="${sub(t).join(' ')}" ;;`).join('\n');
  return `# ${bin} completion for bash (source it: source <(${bin} completion bash))
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local words=("\${COMP_WORDS[@]:1:COMP_CWORD-1}")
  local plain=() w
  for w in "\${words[@]}"; do [[ "$w" == -* ]] || plain+=("$w"); done
  if [ \${#plain[@]} -eq 0 ]; then
    COMPREPLY=($(compgen -W "${top.join(' ')}" -- "$cur"))
    return 0
  fi
  local subs=""
  case "\${plain[0]}" in
${subCases}
  esac
  if [ -n "$subs" ] && [ \${#plain[@]} -eq 1 ]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return 0
  fi
  local id="\${plain[0]}"
  [ -n "$subs" ] && id="\${plain[0]} \${plain[1]}"
  if [[ "$cur" == -* ]]; then
    local flags=""
    case "$id" in
${flagCases}
    esac
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return 0
  fi
  COMPREPLY=($(compgen -W "$(${bin} ls -q 2>/dev/null)" -- "$cur"))
  return 0
}
complete -o default -F ${fn} ${bin}
`;
}

function fish(bin: string, commands: CompletionCommand[]): string {
  const lines = [`# ${bin} completion for fish (${bin} completion fish > ~/.config/fish/completions/${bin}.fish)`, `complete -c ${bin} -f`];
  const top = [...new Set(commands.map((c) => c.id.split(' ')[0]!))].sort();
  lines.push(`complete -c ${bin} -n '__fish_use_subcommand' -a '${top.join(' ')}'`);
  const topics = [...new Set(commands.filter((c) => c.id.includes(' ')).map((c) => c.id.split(' ')[0]!))].sort();
  for (const topic of topics) {
    const subs = [...new Set(commands.filter((c) => c.id.startsWith(`${topic} `)).map((c) => c.id.split(' ')[1]!))].sort();
    lines.push(`complete -c ${bin} -n '__fish_seen_subcommand_from ${topic}; and not __fish_seen_subcommand_from ${subs.join(' ')}' -a '${subs.join(' ')}'`);
  }
  for (const c of commands) {
    const last = c.id.split(' ').pop()!;
    for (const flag of c.flags.filter((f) => f.startsWith('--'))) {
      lines.push(`complete -c ${bin} -n '__fish_seen_subcommand_from ${last}' -l '${flag.slice(2)}'`);
    }
  }
  lines.push(`complete -c ${bin} -n 'not __fish_use_subcommand' -a '(${bin} ls -q 2>/dev/null)' -d machine`);
  return lines.join('\n') + '\n';
}

export function completionScript(shell: CompletionShell, bin: string, commands: CompletionCommand[]): string {
  if (shell === 'fish') return fish(bin, commands);
  if (shell === 'zsh') {
    return `# ${bin} completion for zsh (source it: source <(${bin} completion zsh))
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bash(bin, commands).split('\n').slice(1).join('\n')}`;
  }
  return bash(bin, commands);
}
