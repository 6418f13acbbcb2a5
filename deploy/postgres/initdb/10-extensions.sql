-- Run once by the image's entrypoint when the data volume is first initialised, as the superuser:
-- the migrations also ask for these extensions, which then already exist.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pgrouting;
