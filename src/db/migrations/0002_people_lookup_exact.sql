-- Exact-name lookups without trigram index scans.
--
-- Two names have trigram similarity 1 exactly when their trigram sets are equal, and show_trgm()
-- returns that set sorted and deduplicated, so `show_trgm(name) = show_trgm($1)` finds precisely
-- the lookup hits that score 1. Hash indexes (the key is only hashed) because a long name's
-- trigram array can exceed a btree entry's size limit. The public-name index leaves out people
-- without a public name: their expression is ' ', which has no trigrams and never scores.
CREATE INDEX people_legal_name_trgm_set_idx ON people USING hash (show_trgm(lower(legal_name)));
CREATE INDEX people_public_name_trgm_set_idx ON people
  USING hash (show_trgm(lower(coalesce(public_first_name, '') || ' ' || coalesce(public_last_name, ''))))
  WHERE public_first_name IS NOT NULL OR public_last_name IS NOT NULL;
