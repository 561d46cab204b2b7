-- INSERT INTO a declared sink table: the SELECT's items take the table's column names in order,
-- and rows are upserted by its PRIMARY KEY (the last record of a key wins). A CSV input.
CREATE TABLE people (id bigint, name text, score bigint) WITH (uri = '${IN}');

CREATE TABLE out (id bigint PRIMARY KEY, label text, points bigint) WITH (uri = '${OUT}');

INSERT INTO out
SELECT id, upper(name), score * 10
FROM people;
