-- Issue 17: the job list of a member and job lookups filter on the tenant in the query itself (no
-- per-request load of every instance id of the tenant). A job records the tenant of the instance
-- it acts on and of its restore target, and the columns are cleared when that instance is removed,
-- as its jobs were no longer found through the instances of the tenant before.
ALTER TABLE "Job" ADD COLUMN "tenantId" TEXT;
ALTER TABLE "Job" ADD COLUMN "targetTenantId" TEXT;

UPDATE "Job" j SET "tenantId" = i."tenantId" FROM "Instance" i WHERE i."id" = j."instanceId";
UPDATE "Job" j SET "targetTenantId" = i."tenantId" FROM "Instance" i WHERE i."id" = j."targetInstanceId";

-- Newest first, one page at a time: (tenant, id) serves `ORDER BY id DESC LIMIT n` for each side.
CREATE INDEX "Job_tenantId_id_idx" ON "Job"("tenantId", "id");
CREATE INDEX "Job_targetTenantId_id_idx" ON "Job"("targetTenantId", "id");

-- A page of the backups of one instance, newest first, whatever their number.
CREATE INDEX "Backup_instanceId_id_idx" ON "Backup"("instanceId", "id");
