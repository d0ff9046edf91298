import { ulid } from 'ulid';

/** Sortable unique ids for every record Cairn creates (SPEC §3). */
export function newId(): string {
  return ulid();
}
