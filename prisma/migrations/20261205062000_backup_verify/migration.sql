-- CreateEnum
CREATE TYPE "VerifyStatus" AS ENUM ('ok', 'failed');

-- AlterTable
ALTER TABLE "Backup" ADD COLUMN     "verifiedAt" TIMESTAMP(3),
ADD COLUMN     "verifyError" TEXT,
ADD COLUMN     "verifyLevel" TEXT,
ADD COLUMN     "verifyStatus" "VerifyStatus";

-- CreateIndex
CREATE INDEX "Backup_status_verifiedAt_idx" ON "Backup"("status", "verifiedAt");
