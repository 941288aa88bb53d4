-- The public people list (GET public/people) is read page by page in this order: last name, first
-- name (case-insensitively, missing ones last), country, id. The index makes each keyset page a
-- range scan instead of a sort of every public person. Partial: only people with a public name
-- are listed, about a third of a convention's registry.
CREATE INDEX people_public_list_idx ON people (
  (public_last_name IS NULL), lower(coalesce(public_last_name, '')),
  (public_first_name IS NULL), lower(coalesce(public_first_name, '')),
  coalesce(country, ''), id
) WHERE public_first_name IS NOT NULL OR public_last_name IS NOT NULL;
