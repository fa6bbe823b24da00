-- Placeholder: migration 0010 is reserved for another branch (issue 18);
-- migrations must be numbered without gaps, so this empty one keeps
-- 0011_upload.sql loadable until that branch's 0010 replaces it at merge.
SELECT 1;
