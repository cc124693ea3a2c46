/** POSIX shell quoting: the one quoting function (remote commands, scripts, shell fragments). */
export function shellQuote(value: string, options: { always?: boolean } = {}): string {
  if (!options.always && value !== '' && /^[A-Za-z0-9_./:=@%+,-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
