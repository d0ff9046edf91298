/** Prints rows as aligned columns (only the given keys), or a note when there are none. */
export function printTable(rows: Array<Record<string, unknown>>, columns: string[], out: NodeJS.WritableStream = process.stdout): void {
  if (!rows.length) {
    out.write('(none)\n');
    return;
  }
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  out.write(`${line(columns.map((c) => c.toUpperCase()))}\n`);
  for (const row of cells) out.write(`${line(row)}\n`);
}

/** The API's JSON as it came, for `--json`. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 → "1.5 KiB", 6 → "6 B"; null/undefined → null (printed as "-"). */
export function humanBytes(n: number | null | undefined): string | null {
  if (n === null || n === undefined || !Number.isFinite(n)) return null;
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} ${UNITS[0]}` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** The rows with the given byte-count columns made human-readable, for tables (--json prints the raw numbers). */
export function withSizes<T extends Record<string, unknown>>(rows: T[], keys: string[]): Array<Record<string, unknown>> {
  return rows.map((r) => ({ ...r, ...Object.fromEntries(keys.map((k) => [k, typeof r[k] === 'number' ? humanBytes(r[k] as number) : r[k]])) }));
}
