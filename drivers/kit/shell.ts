/** POSIX shell quoting: the one quoting function (remote commands, scripts). */
export function shellQuote(value: string): string {
  if (value !== '' && /^[A-Za-z0-9_./:=@%+,-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
