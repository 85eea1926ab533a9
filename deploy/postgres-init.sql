-- The postgres example's fuzzy search needs pg_trgm.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
