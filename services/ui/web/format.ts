/** Display helpers: sizes, times and ages. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${UNITS[u]}`;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** "3 min ago", "in 2 h": the distance from now, coarse. */
export function formatAge(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const ms = new Date(iso).getTime() - now;
  const past = ms <= 0;
  const s = Math.abs(ms) / 1000;
  const text =
    s < 60
      ? `${Math.round(s)} s`
      : s < 3600
        ? `${Math.round(s / 60)} min`
        : s < 86400
          ? `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`
          : `${(s / 86400).toFixed(1)} d`;
  return past ? `${text} ago` : `in ${text}`;
}

export function formatWarning(w: unknown): string {
  if (typeof w === 'string') return w;
  if (w && typeof w === 'object') {
    const o = w as Record<string, unknown>;
    const head = [o.code, o.path ?? o.volume].filter((x) => typeof x === 'string').join(' ');
    const msg = typeof o.message === 'string' ? o.message : JSON.stringify(w);
    return head ? `${head}: ${msg}` : msg;
  }
  return String(w);
}
