export * from './ids.ts';
export * from './errors.ts';
