-- users-ingest: user profiles from a randomuser-style JSON API -> Kafka topic (the first half of
-- the users pipeline). The SQL twin of users-ingest.toml: the same variables, the same messages.
--
--   sluice fake-api --port 8089 &
--   sluice run examples/users-ingest.sql --var API=http://127.0.0.1:8089/api/ \
--       --var PROFILES=kafka://127.0.0.1:9092/users_profile --var COUNT=500
--
-- Variables (see users-ingest.toml for every form they take): API, PROFILES, COUNT, PAGE_SIZE,
-- SEED, INTERVAL, DLQ, FORMAT and SCHEMA_REGISTRY.
--
-- Each profile is one message keyed by login.uuid, with every field of the API's answer except
-- the credentials (login.password, login.salt and the password hashes), flattened and named
-- after its place in the answer (name.first -> name_first). A field declared text takes a JSON
-- number as its text, digit for digit; a non-integer age dead-letters the profile.

SET pipeline.name = 'users-ingest';
SET pipeline.checkpoint_interval = '1s';

-- The API's profiles, flattened: OPTIONS (path ...) reads a nested JSON field.
CREATE TABLE api (
  gender text,
  name_title text OPTIONS (path 'name.title'),
  name_first text OPTIONS (path 'name.first'),
  name_last text OPTIONS (path 'name.last'),
  location_street_number text OPTIONS (path 'location.street.number'),
  location_street_name text OPTIONS (path 'location.street.name'),
  location_city text OPTIONS (path 'location.city'),
  location_state text OPTIONS (path 'location.state'),
  location_country text OPTIONS (path 'location.country'),
  location_postcode text OPTIONS (path 'location.postcode'),
  location_latitude text OPTIONS (path 'location.coordinates.latitude'),
  location_longitude text OPTIONS (path 'location.coordinates.longitude'),
  location_timezone_offset text OPTIONS (path 'location.timezone.offset'),
  location_timezone_description text OPTIONS (path 'location.timezone.description'),
  email text,
  login_uuid text OPTIONS (path 'login.uuid'),
  login_username text OPTIONS (path 'login.username'),
  dob_date text OPTIONS (path 'dob.date'),
  dob_age bigint OPTIONS (path 'dob.age'),
  registered_date text OPTIONS (path 'registered.date'),
  registered_age bigint OPTIONS (path 'registered.age'),
  phone text,
  cell text,
  id_name text OPTIONS (path 'id.name'),
  id_value text OPTIONS (path 'id.value'),
  picture_large text OPTIONS (path 'picture.large'),
  picture_medium text OPTIONS (path 'picture.medium'),
  picture_thumbnail text OPTIONS (path 'picture.thumbnail'),
  nat text
) WITH (
  uri = '${API:-http://127.0.0.1:8089/api/}', records = 'results',
  page_size = '${PAGE_SIZE:-50}', seed = '${SEED:-sluice}', count = '${COUNT:-}',
  interval = '${INTERVAL:-200ms}', timeout = '2s', retries = 3, backoff = '200ms', backoff_max = '2s'
);

-- The sink: each profile one message, keyed by its primary key.
CREATE TABLE users_profile (
  gender text, name_title text, name_first text, name_last text,
  location_street_number text, location_street_name text, location_city text,
  location_state text, location_country text, location_postcode text, location_latitude text,
  location_longitude text, location_timezone_offset text, location_timezone_description text,
  email text, login_uuid text PRIMARY KEY, login_username text, dob_date text, dob_age bigint,
  registered_date text, registered_age bigint, phone text, cell text, id_name text,
  id_value text, picture_large text, picture_medium text, picture_thumbnail text, nat text
) WITH (
  uri = '${PROFILES:-kafka://127.0.0.1:9092/users_profile}',
  format = '${FORMAT:-json}', schema_registry = '${SCHEMA_REGISTRY:-}',
  dead_letter = '${DLQ:-}'
);

-- Every source field, unchanged.
INSERT INTO users_profile
SELECT * FROM api;
