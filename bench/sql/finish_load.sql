-- bench/sql/finish_load.sql -- after the loaders: indexes built (or rebuilt) after the bulk
-- load, as the baseline harness does, so every size figure is the compact best case.
SET maintenance_work_mem = '256MB';
ALTER TABLE bench.tokens ADD PRIMARY KEY (id);
ALTER TABLE baseline.keys ADD CONSTRAINT keys_pkey PRIMARY KEY (id);
ALTER TABLE baseline.keys ADD CONSTRAINT keys_client_id_key UNIQUE (client_id);
SELECT setval(pg_get_serial_sequence('baseline.keys', 'id'), :n);
REINDEX TABLE apikeys.keys;
VACUUM apikeys.keys;   -- ANALYZE apikeys.keys: bench/run.sh, which checks that it works
VACUUM (ANALYZE) baseline.keys;
VACUUM (ANALYZE) bench.tokens;
