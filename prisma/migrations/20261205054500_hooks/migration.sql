-- CreateEnum
CREATE TYPE "HookStage" AS ENUM ('backup', 'restore');

-- CreateEnum
CREATE TYPE "HookWindowStatus" AS ENUM ('open', 'thawing', 'closed');

-- CreateEnum
CREATE TYPE "HookRunStatus" AS ENUM ('running', 'succeeded', 'failed', 'timeout', 'cancelled', 'skipped');

-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "hooks" JSONB;

-- AlterTable
ALTER TABLE "Node" ADD COLUMN     "hookCommands" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- CreateTable
CREATE TABLE "InstanceHooks" (
    "instanceId" TEXT NOT NULL,
    "hooks" JSONB NOT NULL,
    "secret" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "InstanceHooks_pkey" PRIMARY KEY ("instanceId")
);

-- CreateTable
CREATE TABLE "HookWindow" (
    "id" TEXT NOT NULL,
    "jobId" TEXT NOT NULL,
    "instanceId" TEXT NOT NULL,
    "nodeId" TEXT NOT NULL,
    "stage" "HookStage" NOT NULL,
    "attempt" INTEGER NOT NULL,
    "status" "HookWindowStatus" NOT NULL DEFAULT 'open',
    "specs" JSONB NOT NULL,
    "pre" JSONB,
    "post" JSONB,
    "preStatus" "HookRunStatus",
    "postStatus" "HookRunStatus",
    "outcome" TEXT,
    "quiescedMs" INTEGER,
    "thawedBy" TEXT,
    "openedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "closedAt" TIMESTAMP(3),

    CONSTRAINT "HookWindow_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "HookWindow_nodeId_status_idx" ON "HookWindow"("nodeId", "status");

-- CreateIndex
CREATE INDEX "HookWindow_status_openedAt_idx" ON "HookWindow"("status", "openedAt");

-- CreateIndex
CREATE INDEX "HookWindow_jobId_idx" ON "HookWindow"("jobId");

-- AddForeignKey
ALTER TABLE "InstanceHooks" ADD CONSTRAINT "InstanceHooks_instanceId_fkey" FOREIGN KEY ("instanceId") REFERENCES "Instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "HookWindow" ADD CONSTRAINT "HookWindow_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "Job"("id") ON DELETE CASCADE ON UPDATE CASCADE;
