export * from './records.ts';
export { PrismaRecords } from './prisma.records.ts';
export { MemoryRecords } from './memory.records.ts';
