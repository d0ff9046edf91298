-- Issue 15: with each heartbeat the node worker reports what it sees at the host path of every
-- volume registered on it (exists, missing, not-a-directory, unreadable), and coverage reads it.
ALTER TABLE "Node" ADD COLUMN "volumeStates" JSONB;
