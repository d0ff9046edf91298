export * from './records.ts';
export { PrismaRecords } from './prisma.records.ts';
export { MemoryRecords } from './memory.records.ts';
export * from './hook.records.ts';
