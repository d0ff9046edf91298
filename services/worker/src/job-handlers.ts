/**
 * Checks, when a worker starts, that every job name its queue can carry has exactly one handler
 * and that no handler is for a name the queue does not declare: a missing one would otherwise
 * surface only when such a job runs ("no handler"), long after the deploy.
 */
export function checkHandlers<N extends string, H>(queue: string, names: readonly N[], handlers: Record<N, H>): Record<N, H> {
  const missing = names.filter((n) => typeof handlers[n] !== 'function');
  const unknown = Object.keys(handlers).filter((k) => !names.includes(k as N));
  if (missing.length || unknown.length) {
    const problems = [
      ...(missing.length ? [`no handler for ${missing.join(', ')}`] : []),
      ...(unknown.length ? [`handlers for undeclared jobs ${unknown.join(', ')}`] : []),
    ];
    throw new Error(`${queue} worker: ${problems.join('; ')}`);
  }
  return handlers;
}
