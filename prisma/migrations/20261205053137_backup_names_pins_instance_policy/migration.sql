-- AlterTable
ALTER TABLE "Backup" ADD COLUMN     "name" TEXT,
ADD COLUMN     "note" TEXT,
ADD COLUMN     "pinned" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "InstancePolicy" (
    "instanceId" TEXT NOT NULL,
    "manualBackupLimit" INTEGER,
    "manualRetention" JSONB,
    "timezone" TEXT NOT NULL DEFAULT 'UTC',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "InstancePolicy_pkey" PRIMARY KEY ("instanceId")
);

-- AddForeignKey
ALTER TABLE "InstancePolicy" ADD CONSTRAINT "InstancePolicy_instanceId_fkey" FOREIGN KEY ("instanceId") REFERENCES "Instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A backup's name is unique per instance among the backups that are not deleting or deleted, so a
-- deleted backup's name can be used again (added by hand: Prisma does not model partial indexes)
CREATE UNIQUE INDEX "Backup_instanceId_name_live_key" ON "Backup"("instanceId", "name") WHERE "name" IS NOT NULL AND "status" NOT IN ('deleting', 'deleted');
