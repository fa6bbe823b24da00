-- Placeholder on branch ibr only: 0012 is reserved for another branch's
-- migration, and migrations must run without gaps. Delete this file when
-- merging that branch's 0012.
SELECT 1;
