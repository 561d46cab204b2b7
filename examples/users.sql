-- users: user profiles from Kafka (written by examples/users-ingest.sql or .toml) -> flattened ->
-- upserted by id into the Cassandra table users_profile. The SQL twin of users.toml: the same
-- variables, the same table users_profile. Without Kafka and Cassandra, the same flattening
-- straight from the API into SQLite is examples/users-local.sql.
--
--   sluice run examples/users.sql --var PROFILES=kafka://127.0.0.1:9092/users_profile \
--       --var CASSANDRA=cassandra://127.0.0.1:9042/sluice_users
--
-- Variables (see users.toml for every form they take): PROFILES, CASSANDRA, DLQ, FORMAT and
-- SCHEMA_REGISTRY.
--
-- A message that is not a JSON object, and one that has none of id, name, email and username
-- (not a profile), is dead-lettered with the reason; neither stops the pipeline. The id is
-- login.uuid, or a version-5 UUID of the whole profile when it has none (see users.toml), so a
-- replay of the same message upserts the same row.

SET pipeline.name = 'users';
SET pipeline.checkpoint_interval = '1s';

-- The source: the flat profile messages of users-ingest (JSON objects, or Avro records with the
-- same field names). Every field is text: a number sent where text is expected (a numeric
-- postcode or street number) is read as its digits.
CREATE TABLE profiles (
  gender text,
  name_first text,
  name_last text,
  location_street_number text,
  location_street_name text,
  location_city text,
  location_state text,
  location_country text,
  location_postcode text,
  email text,
  login_uuid text,
  login_username text,
  dob_date text,
  registered_date text,
  phone text,
  picture_medium text,
  -- "{number} {street}, {city}, {state}, {country}"; null only when all five are missing.
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
    END) STORED
) WITH (
  uri = '${PROFILES:-kafka://127.0.0.1:9092/users_profile}',
  format = '${FORMAT:-json}', schema_registry = '${SCHEMA_REGISTRY:-}'
);

-- The sink: one row per profile, upserted by its primary key (all columns text).
CREATE TABLE users_profile (
  id text PRIMARY KEY, first_name text, last_name text, gender text, address text,
  post_code text, email text, username text, dob text, registered_date text, phone text,
  picture text
) WITH (uri = '${CASSANDRA:-cassandra://127.0.0.1:9042/sluice_users}', dead_letter = '${DLQ:-}');

INSERT INTO users_profile
SELECT id, name_first, name_last, gender, address, location_postcode, email, login_username,
       dob_date, registered_date, phone, picture_medium
FROM profiles
WHERE dead_letter_if((login_uuid IS NULL OR trim(login_uuid) = '') AND name_first IS NULL
                     AND name_last IS NULL AND email IS NULL AND login_username IS NULL,
                     'not a user profile: no login.uuid, name, email or username');
