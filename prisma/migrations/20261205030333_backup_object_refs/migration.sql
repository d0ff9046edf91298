-- AlterTable
ALTER TABLE "Backup" ADD COLUMN     "reusedBytes" BIGINT;

-- CreateTable
CREATE TABLE "BackupObjectRef" (
    "backupId" TEXT NOT NULL,
    "ownerId" TEXT NOT NULL,

    CONSTRAINT "BackupObjectRef_pkey" PRIMARY KEY ("backupId","ownerId")
);

-- CreateIndex
CREATE INDEX "BackupObjectRef_ownerId_idx" ON "BackupObjectRef"("ownerId");

-- AddForeignKey
ALTER TABLE "BackupObjectRef" ADD CONSTRAINT "BackupObjectRef_backupId_fkey" FOREIGN KEY ("backupId") REFERENCES "Backup"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "BackupObjectRef" ADD CONSTRAINT "BackupObjectRef_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "Backup"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- A backup never lists its own archive object (added by hand: Prisma does not model CHECK constraints)
ALTER TABLE "BackupObjectRef" ADD CONSTRAINT "BackupObjectRef_not_self" CHECK ("backupId" <> "ownerId");
