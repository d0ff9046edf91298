import type { z } from 'zod';
import { CairnError } from '@cairn/core';
import type { ErrorDetail } from '@cairn/core/api/index.ts';

/** Flattens zod issues into one detail per bad field; unknown keys are named one by one. */
export function issuesToDetails(issues: readonly z.core.$ZodIssue[]): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  for (const issue of issues) {
    const at = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) details.push({ path: [...at, key].join('.'), message: 'unknown field' });
    } else {
      details.push({ path: at.join('.'), message: issue.message });
    }
  }
  return details;
}

/** A 400 whose message lists the bad fields and whose details carry every one of them. */
export function validationError(where: string, details: ErrorDetail[]): CairnError {
  const shown = details.slice(0, 5).map((d) => (d.path ? `${d.path}: ${d.message}` : d.message));
  const more = details.length > 5 ? ` (and ${details.length - 5} more)` : '';
  return new CairnError('validation', `invalid ${where}: ${shown.join('; ')}${more}`, { details });
}

export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw validationError(where, issuesToDetails(result.error.issues));
}

/** One bad field found after schema validation (unknown node, volume outside roots...). */
export function fieldError(path: string, message: string): CairnError {
  return validationError('request', [{ path, message }]);
}
