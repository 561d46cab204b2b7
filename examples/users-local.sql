-- users-local: the users pipeline without servers, in SQL. The SQL twin of users-local.toml:
-- the same variables, the same table users_profile.
--
--   build/sluice fake-api --port 8089 &
--   build/sluice run examples/users-local.sql --var SINK=sqlite:users.db
--
-- Variables (see users-local.toml): SINK (required), API, COUNT, PAGE_SIZE, SEED, INTERVAL, DLQ.

SET pipeline.name = 'users-local';
SET pipeline.checkpoint_interval = '1s';

-- The API's profiles, flattened: OPTIONS (path ...) reads a nested JSON field.
CREATE TABLE api (
  gender text,
  name_first text OPTIONS (path 'name.first'),
  name_last text OPTIONS (path 'name.last'),
  location_street_number text OPTIONS (path 'location.street.number'),
  location_street_name text OPTIONS (path 'location.street.name'),
  location_city text OPTIONS (path 'location.city'),
  location_state text OPTIONS (path 'location.state'),
  location_country text OPTIONS (path 'location.country'),
  location_postcode text OPTIONS (path 'location.postcode'),
  email text,
  login_uuid text OPTIONS (path 'login.uuid'),
  login_username text OPTIONS (path 'login.username'),
  dob_date text OPTIONS (path 'dob.date'),
  registered_date text OPTIONS (path 'registered.date'),
  phone text,
  picture_medium text OPTIONS (path 'picture.medium'),
  address text GENERATED ALWAYS AS (
    CASE WHEN location_street_number IS NULL AND location_street_name IS NULL
              AND location_city IS NULL AND location_state IS NULL AND location_country IS NULL
         THEN NULL
         ELSE concat(location_street_number, ' ', location_street_name, ', ', location_city, ', ',
                     location_state, ', ', location_country)
    END) STORED,
  -- login.uuid, or a version-5 UUID of the whole profile when it has none.
  id text GENERATED ALWAYS AS (
    CASE WHEN login_uuid IS NULL OR trim(login_uuid) = ''
         THEN uuid5('03dfda38-77dc-5be2-9c23-26d2a4dfa02d',
                    concat(name_first, '|', name_last, '|', email, '|', login_username, '|',
                           dob_date, '|', registered_date, '|', phone, '|', picture_medium, '|',
                           location_street_number, '|', location_street_name, '|', location_city,
                           '|', location_state, '|', location_country, '|', location_postcode))
         ELSE login_uuid
    END) STORED,
  CONSTRAINT "not a user profile: no login.uuid, name, email or username" CHECK (NOT (
    (login_uuid IS NULL OR trim(login_uuid) = '') AND name_first IS NULL AND name_last IS NULL
    AND email IS NULL AND login_username IS NULL))
) WITH (
  uri = '${API:-http://127.0.0.1:8089/api/}', records = 'results',
  page_size = '${PAGE_SIZE:-50}', seed = '${SEED:-sluice}', count = '${COUNT:-500}',
  interval = '${INTERVAL:-0s}', timeout = '2s', retries = 3, backoff = '200ms', backoff_max = '2s'
);

-- The sink: upserted by its primary key.
CREATE TABLE users_profile (
  id text PRIMARY KEY, first_name text, last_name text, gender text, address text,
  post_code text, email text, username text, dob text, registered_date text, phone text,
  picture text
) WITH (uri = '${SINK}', dead_letter = '${DLQ:-}');

INSERT INTO users_profile
SELECT id, name_first, name_last, gender, address, location_postcode, email, login_username,
       dob_date, registered_date, phone, picture_medium
FROM api;
