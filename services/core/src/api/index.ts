export * from './registry.ts';
export * from './common.schemas.ts';
export * from './jobs.schemas.ts';
export * from './tokens.schemas.ts';
export * from './instances.schemas.ts';
export * from './backups.schemas.ts';
export * from './nodes.schemas.ts';
export * from './schedules.schemas.ts';
