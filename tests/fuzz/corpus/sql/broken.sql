CREATE TABLE src (a bigint) WITH (uri = ${TRACKING});
SELECT ((((a))));
DROP TABLE src;
