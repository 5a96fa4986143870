-- Schema version 4 on PostgreSQL keeps per-node usage for the capacity
-- guard that processes sharing a database need. An SQLite file is served
-- by one process, whose scheduler claims are the whole truth, so it has
-- no such guard; this version only keeps the two backends' numbering in
-- step.
SELECT 1;
