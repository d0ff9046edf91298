/** One dependency check: resolves when the dependency answers, rejects with a reason otherwise. */
export type Check = () => Promise<unknown>;

export interface Readiness {
  ok: boolean;
  checks: Record<string, { ok: boolean; latencyMs: number; error?: string }>;
}

/** Runs every check concurrently, each bounded by a timeout, and names the ones that fail. */
export async function checkReadiness(checks: Record<string, Check>, timeoutMs = 2000): Promise<Readiness> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      const start = Date.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          check(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        return [name, { ok: true, latencyMs: Date.now() - start }] as const;
      } catch (err) {
        return [name, { ok: false, latencyMs: Date.now() - start, error: err instanceof Error ? err.message : String(err) }] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ok: entries.every(([, r]) => r.ok), checks: Object.fromEntries(entries) };
}
