-- Previous legal names (GET people/:id/prev-names, people/prev-names.csv) are read from the audit
-- rows that set a legal name: a person's `new` row and each `update` that changed it. This index
-- holds just those rows, in the order the names followed each other.
CREATE INDEX log_legal_name_idx ON log (subject, "timestamp", id) WHERE parameters ? 'legal_name';
